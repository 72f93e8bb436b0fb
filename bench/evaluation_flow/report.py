"""The results as JSON-ready data, and as the text the terminal shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import click

from bench.evaluation_flow import calls
from bench.evaluation_flow.measure import QUALITY, EventResult

# The target for a synchronize with a warm token and a known comment id.
TARGET_CALLS = 8


def _typical(events: Sequence[calls.EventCalls]) -> tuple[list[tuple[str, str]], int]:
    """The most common sequence of calls (by pattern) with the details of its first event,
    and how many events made exactly that sequence."""
    if not events:
        return [], 0
    shapes = Counter(tuple(p for p, _, _ in e.calls) for e in events)
    shape, n = shapes.most_common(1)[0]
    first = next(e for e in events if tuple(p for p, _, _ in e.calls) == shape)
    return [(p, d) for p, d, _ in first.calls], n


def _calls_json(event: calls.EventCalls) -> dict[str, Any]:
    return {
        "count": event.count,
        "mutating": event.mutating,
        "token_requests": event.token_requests,
        "by_pattern": dict(event.by_pattern().most_common()),
        "calls": [{"call": p, "detail": d, "status": s} for p, d, s in event.calls],
        "repeated_reads": dict(calls.repeated_reads(event)),
    }


def _event_json(e: EventResult) -> dict[str, Any]:
    events_job, runs_job = e.job_starts()
    return {
        "event": e.event,
        "sha": e.sha,
        "latency_ms": e.latency_ms,
        "ack_ms": e.ack_ms,
        "events_job_first_call_ms": events_job,
        "runs_job_first_call_ms": runs_job,
        "comment_ms": e.comment_ms,
        "check_ms": e.check_ms,
        "jobs_done_ms": e.done_ms,
        "conclusion": e.conclusion,
        "expected": e.expected,
        "calls": _calls_json(e.calls),
        "timeline": [{"ms": t, "method": m, "path": p} for t, m, p in e.timeline],
    }


def build(
    push_calls: calls.EventCalls,
    opened: EventResult,
    idle: Sequence[EventResult],
    paced: Sequence[EventResult],
    installs: Sequence[float],
    gets: Mapping[str, Sequence[float]],
    load: Mapping[str, float | None],
) -> dict[str, Any]:
    sync = [*idle, *paced]
    counts = [e.calls.count for e in sync]
    typical, typical_n = _typical([e.calls for e in sync])
    starts = [e.job_starts() for e in idle]
    everything = [opened, *sync]
    failures = [
        f"{e.event} {e.sha[:7]}: {QUALITY} {e.conclusion}, expected {e.expected}"
        for e in everything
        if e.conclusion != e.expected
    ] + [
        f"{e.event} {e.sha[:7]}: {p} answered {s}"
        for e in everything
        for p, _, s in e.calls.errors()
    ]
    summary = {
        "idle": {
            "latency_ms": calls.summary([e.latency_ms for e in idle]),
            "ack_ms": calls.summary([e.ack_ms for e in idle]),
            "events_job_first_call_ms": calls.summary([a for a, _ in starts if a is not None]),
            "runs_job_first_call_ms": calls.summary([b for _, b in starts if b is not None]),
            "comment_ms": calls.summary([e.comment_ms for e in idle]),
            "check_ms": calls.summary([e.check_ms for e in idle]),
            "jobs_done_ms": calls.summary([e.done_ms for e in idle]),
            "busy_cores": dict(load),
        },
        "back_to_back_latency_ms": [e.latency_ms for e in paced],
        "opened_latency_ms": opened.latency_ms,
        "baselines": {
            "installation webhook -> Redis ms": calls.summary(installs),
            **{f"{name} ms": calls.summary(values) for name, values in gets.items()},
        },
        "calls_per_synchronize": {
            "events": len(sync),
            "min": min(counts, default=0),
            "max": max(counts, default=0),
            "mutating": max((e.calls.mutating for e in sync), default=0),
            "token_requests": sum(e.calls.token_requests for e in sync),
            "target_max": TARGET_CALLS,
            "events_with_typical_sequence": typical_n,
            "typical_sequence": [f"{p} [{d}]" if d else p for p, d in typical],
            "by_pattern": dict(Counter(p for p, _ in typical).most_common()),
        },
        "calls_opened": _calls_json(opened.calls),
        "calls_push_to_main": _calls_json(push_calls),
    }
    return {
        "summary": summary,
        "failures": failures,
        "opened": _event_json(opened),
        "synchronize_idle": [_event_json(e) for e in idle],
        "synchronize_back_to_back": [_event_json(e) for e in paced],
    }


def _fmt(s: Mapping[str, float]) -> str:
    if not s:
        return "n/a"
    return "  ".join(f"{name} {s[name]:6.0f}" for name in ("p50", "p95", "min", "max")) + " ms"


def _say(message: str = "") -> None:
    click.echo(message)


def _calls_lines(title: str, c: Mapping[str, Any]) -> None:
    _say(
        f"{title}: {c['count']} API calls ({c['mutating']} mutating) "
        f"+ {c['token_requests']} token request(s)"
    )
    for line in Counter(
        f"{x['call']}  [{x['detail']}]" if x["detail"] else x["call"] for x in c["calls"]
    ).items():
        _say(f"  {line[1]} x {line[0]}")


def show(result: Mapping[str, Any]) -> None:
    """The summary, as a reader of the terminal wants it."""
    s = result["summary"]
    idle, per, base = s["idle"], s["calls_per_synchronize"], s["baselines"]
    _say()
    _say(
        f"synchronize x {idle['latency_ms'].get('n', 0)}, each with a full pacing bucket; "
        "ms from sending the webhook until:"
    )
    rows = (
        ("comment and check on the head", idle["latency_ms"]),
        ("webhook answered", idle["ack_ms"]),
        ("events job's first API call", idle["events_job_first_call_ms"]),
        ("runs job's first API call", idle["runs_job_first_call_ms"]),
        ("sticky comment on the head", idle["comment_ms"]),
        (f"{QUALITY} completed", idle["check_ms"]),
        ("both jobs finished", idle["jobs_done_ms"]),
    )
    for label, values in rows:
        _say(f"  {label:32} {_fmt(values)}")
    cores = idle["busy_cores"]
    _say(
        f"  busy cores meanwhile: {cores['machine']} in all, {cores['benchmark']} the "
        f"benchmark's processes, {cores['other']} others"
    )
    _say("baselines, between the pushes:")
    for label, values in base.items():
        _say(f"  {label.removesuffix(' ms'):32} {_fmt(values)}")
    if s["back_to_back_latency_ms"]:
        _say(
            "back-to-back synchronize (mlgate paces mutating calls to 1/s after a burst of 10): "
            + ", ".join(f"{x:.0f}" for x in s["back_to_back_latency_ms"])
            + " ms"
        )
    _say(f"opened (cold token, no comment yet): {s['opened_latency_ms']:.0f} ms")
    _say()
    verdict = "met" if per["max"] <= per["target_max"] else "NOT MET"
    _say(
        f"API calls per synchronize, token excluded: {per['min']}..{per['max']} "
        f"({per['mutating']} mutating), {per['token_requests']} token requests in "
        f"{per['events']} events; target <= {per['target_max']}: {verdict}"
    )
    _say(f"  the sequence of {per['events_with_typical_sequence']} of {per['events']} events:")
    for line in per["typical_sequence"]:
        _say(f"    {line}")
    _calls_lines("opened (cold)", s["calls_opened"])
    _calls_lines("push to main (records the baseline)", s["calls_push_to_main"])
    for failure in result["failures"]:
        _say(f"FAILED: {failure}")
