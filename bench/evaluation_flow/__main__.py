"""`python -m bench.evaluation_flow`: webhook-to-comment latency and API calls per PR event."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench.evaluation_flow import measure, report
from bench.evaluation_flow.measure import (
    AUTHOR,
    CHANGED,
    POLL,
    REPO,
    BenchError,
    EventResult,
)
from bench.evaluation_flow.stack import Stack, StackError, running
from bench.webhook_ack.servers import machine_cpu
from bot import sample

RESULTS = Path(__file__).resolve().parents[1] / "results"
BRANCH = "more-data"
# BETTER_DATA passes the gates against BASE_DATA; WORSE_DATA's noisy labels fail them.
VERSIONS = ((sample.BETTER_DATA, "success"), (sample.WORSE_DATA, "failure"))


def _say(message: str = "") -> None:
    click.echo(message)
    sys.stdout.flush()


class Load:
    """Busy cores of the machine, and of the benchmark's own processes, over a stretch."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._start = (time.monotonic(), machine_cpu(), stack.cpu_seconds())

    def cores(self) -> dict[str, float | None]:
        wall0, machine0, own0 = self._start
        wall, machine, own = time.monotonic() - wall0, machine_cpu(), self._stack.cpu_seconds()
        busy = None if machine is None or machine0 is None else (machine - machine0) / wall
        mine = None if own is None or own0 is None else (own - own0) / wall
        other = None if busy is None or mine is None else max(busy - mine, 0.0)
        return {
            "machine": None if busy is None else round(busy, 2),
            "benchmark": None if mine is None else round(mine, 2),
            "other": None if other is None else round(other, 2),
        }


def _run(
    stack: Stack, pushes: int, back_to_back: int, stop_at: float, repeat_content: bool
) -> dict[str, Any]:
    emulator = stack.emulator
    emulator.add_installation(measure.INSTALLATION, "acme")
    repo = emulator.create_repo(
        REPO,
        installation_id=measure.INSTALLATION,
        files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="git"),
    )
    emulator.set_permission(REPO, AUTHOR, "write")
    base_sha = repo.head("main")
    push_calls = measure.push_to_default_branch(stack)
    _say(
        f"push to main (records the baseline): {push_calls.count} API calls + "
        f"{push_calls.token_requests} token request"
    )

    version, expected = VERSIONS[0]
    fresh = None if repeat_content else 0
    head = repo.commit(BRANCH, measure.change(version, fresh), "New data version", author=AUTHOR)
    pull = emulator.open_pull_request(REPO, head=BRANCH, base="main", user=AUTHOR, title="Data")
    number = int(pull["number"])
    # Cold: the push above cached a token; the first event of a PR knows no comment id.
    measure.forget_token(stack)
    measure.fill_bucket(stack)
    opened = measure.pull_request_event(
        stack, "opened", number, {base_sha: "base", head: "head"}, expected
    )
    _say(
        f"opened (cold): {opened.latency_ms:.0f} ms, {opened.calls.count} API calls + "
        f"{opened.calls.token_requests} token request"
    )

    idle: list[EventResult] = []
    paced: list[EventResult] = []
    installs: list[float] = []
    gets: dict[str, list[float]] = {}
    previous = head

    def push(series: list[EventResult], full_bucket: bool) -> EventResult:
        nonlocal previous
        n = len(idle) + len(paced) + 1
        version, expected = VERSIONS[n % len(VERSIONS)]
        files = measure.change(version, None if repeat_content else n)
        head = repo.commit(BRANCH, files, f"Data version {n}", author=AUTHOR)
        if full_bucket:
            measure.fill_bucket(stack)
        refs = {base_sha: "base", head: "head", previous: "previous head"}
        event = measure.pull_request_event(stack, "synchronize", number, refs, expected)
        series.append(event)
        previous = head
        _say(
            f"push {n:2} {'idle' if full_bucket else 'back-to-back'}: {event.latency_ms:5.0f} ms "
            f"(webhook answered {event.ack_ms:.0f}, comment {event.comment_ms:.0f}, check "
            f"{event.check_ms:.0f}), {event.conclusion}, {event.calls.count} calls"
            + (f" + {event.calls.token_requests} token" if event.calls.token_requests else "")
        )
        return event

    probes = measure.get_probes(stack, number, head)
    load = Load(stack)
    for i in range(pushes):
        if time.monotonic() > stop_at:
            _say(f"--max-seconds reached: {len(idle)} of {pushes} pushes measured")
            break
        push(idle, full_bucket=True)
        # The baselines between the pushes, so that a noisy moment hits them alike.
        installs.append(measure.installation_event(stack, i))
        measure.time_probes(probes, gets)
    idle_load = load.cores()
    measure.fill_bucket(stack)
    for _ in range(back_to_back):
        if time.monotonic() > stop_at:
            _say(f"--max-seconds reached: {len(paced)} of {back_to_back} back-to-back pushes")
            break
        push(paced, full_bucket=False)
    return report.build(push_calls, opened, idle, paced, installs, gets, idle_load)


@click.command()
@click.option(
    "--pushes",
    default=30,
    show_default=True,
    help="synchronize events, each with a full pacing bucket.",
)
@click.option(
    "--back-to-back",
    default=5,
    show_default=True,
    help="Then synchronize events, each as soon as the last is done (paced).",
)
@click.option(
    "--max-seconds",
    default=240.0,
    show_default=True,
    help="Stop pushing after this long; the results so far are kept.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON result (default: bench/results/evaluation_flow-<time>.json).",
)
@click.option("--keep-logs", is_flag=True, help="Keep the logs and repositories; prints where.")
@click.option(
    "--repeat-content",
    is_flag=True,
    help="Pushes alternate two versions' exact files (blobs seen before, as a revert) instead "
    "of new content each time.",
)
def main(
    pushes: int,
    back_to_back: int,
    max_seconds: float,
    output: Path | None,
    keep_logs: bool,
    repeat_content: bool,
) -> None:
    """Latency from a pull_request webhook to the sticky comment and mlgate/quality on the new
    head, and the GitHub API calls each event costs: the web app and the real `mlgate worker`
    against the GitHub emulator, with an embedded Redis, all on this machine.
    """
    if pushes < 1 or max_seconds <= 0 or back_to_back < 0:
        raise click.UsageError("--pushes and --max-seconds must be positive")
    started_at = datetime.now(UTC)
    began = time.monotonic()
    loadavg_before = os.getloadavg()
    try:
        with running(keep_dir=keep_logs) as stack:
            if keep_logs:
                _say(f"logs and repositories are kept in {stack.work_dir}")
            result = _run(stack, pushes, back_to_back, began + max_seconds, repeat_content)
    except (StackError, BenchError) as exc:
        raise click.ClickException(str(exc)) from exc
    report.show(result)
    result_file = output or RESULTS / f"evaluation_flow-{started_at:%Y%m%dT%H%M%SZ}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "evaluation_flow",
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - began, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in loadavg_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "pushes": pushes,
            "back_to_back": back_to_back,
            "max_seconds": max_seconds,
            "poll_ms": POLL * 1000,
            "metrics_source": "git",
            "changed_per_push": list(CHANGED),
            "repeat_content": repeat_content,
        },
        **result,
    }
    result_file.write_text(json.dumps(document, indent=2) + "\n")
    _say(f"\nwritten: {result_file}")
    if result["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
