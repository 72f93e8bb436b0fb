"""Pure summaries of what the load generator measured: percentiles, the table, the targets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The targets, at 32 connections in a closed loop: mlgate at the cost of the minimal
# honest endpoint (>= 0.9x its requests/s, <= 1.2x its p99), and, as a stretch, at least as
# fast as Probot + BullMQ doing the same claim-and-queue.
TARGET_CONCURRENCY = 32
MINIMAL_THROUGHPUT_TARGET = 0.9
MINIMAL_P99_TARGET = 1.2
PROBOT_THROUGHPUT_STRETCH = 1.0


def percentile(ordered: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class Measurement:
    """One endpoint over one round (round 0: all rounds pooled)."""

    endpoint: str
    round: int
    requests: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    client_cpu: float
    gunicorn_cpu: float | None  # master and workers, from /proc; None where there is none
    redis_cpu: float  # mlgate only: what Redis spent (INFO cpu) while serving this endpoint
    machine_cpu: float | None  # what every process on the machine spent meanwhile

    @property
    def server_cpu(self) -> float | None:
        return None if self.gunicorn_cpu is None else self.gunicorn_cpu + self.redis_cpu

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu is None or not self.requests:
            return None
        return self.server_cpu * 1000 / self.requests

    @property
    def other_load(self) -> float | None:
        """Cores kept busy by processes outside the benchmark: the noise of a shared machine."""
        if self.machine_cpu is None or self.server_cpu is None or self.elapsed <= 0:
            return None
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu) / self.elapsed

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU as a share of one core."""
        return self.client_cpu / self.elapsed if self.elapsed > 0 else 0.0


def measurement(
    endpoint: str,
    round_: int,
    latencies_ns: Iterable[int],
    *,
    elapsed: float,
    errors: int,
    client_cpu: float,
    gunicorn_cpu: float | None,
    redis_cpu: float = 0.0,
    machine_cpu: float | None = None,
) -> Measurement:
    ordered = sorted(latencies_ns)
    return Measurement(
        endpoint=endpoint,
        round=round_,
        requests=len(ordered),
        elapsed=elapsed,
        p50_ms=percentile(ordered, 50) / 1e6,
        p99_ms=percentile(ordered, 99) / 1e6,
        max_ms=(ordered[-1] if ordered else 0) / 1e6,
        errors=errors,
        client_cpu=client_cpu,
        gunicorn_cpu=gunicorn_cpu,
        redis_cpu=redis_cpu,
        machine_cpu=machine_cpu,
    )


def pooled(
    endpoint: str, rounds: Sequence[Measurement], latencies_ns: Iterable[int]
) -> Measurement:
    """All rounds of one endpoint as one measurement: total requests over total time."""
    cpus = [m.gunicorn_cpu for m in rounds]
    machine = [m.machine_cpu for m in rounds]
    return measurement(
        endpoint,
        0,
        latencies_ns,
        elapsed=sum(m.elapsed for m in rounds),
        errors=sum(m.errors for m in rounds),
        client_cpu=sum(m.client_cpu for m in rounds),
        gunicorn_cpu=None
        if any(c is None for c in cpus)
        else sum(c for c in cpus if c is not None),
        redis_cpu=sum(m.redis_cpu for m in rounds),
        machine_cpu=None if None in machine else sum(c for c in machine if c is not None),
    )


def ratio(candidate: Measurement, baseline: Measurement) -> float:
    return candidate.rps / baseline.rps if baseline.rps > 0 else 0.0


def cpu_ratio(candidate: Measurement, baseline: Measurement) -> float | None:
    """Server CPU per request, baseline over candidate: the throughput ratio that CPU allows.

    Less sensitive than requests/s to what else runs on a shared machine.
    """
    mine = candidate.server_cpu_ms_per_request
    theirs = baseline.server_cpu_ms_per_request
    return None if mine is None or theirs is None or mine <= 0 else theirs / mine


@dataclass(frozen=True)
class Verdict:
    name: str
    required: str
    measured: str
    met: bool


def p99_ratio(candidate: Measurement, baseline: Measurement) -> float:
    return candidate.p99_ms / baseline.p99_ms if baseline.p99_ms > 0 else math.inf


def verdicts(
    mlgate: Measurement,
    minimal: Measurement,
    probot: Measurement | None,
    concurrency: int,
    rate: float = 0.0,
) -> list[Verdict]:
    """The issue's targets; each is met only at the 32 connections it is stated for."""
    how = f"open loop at {rate:g} req/s" if rate else "closed loop"
    how += f", {concurrency} connections"
    at_target = concurrency == TARGET_CONCURRENCY
    found = []
    if not rate:  # at a fixed rate every server serves the same requests/s: nothing to compare
        found.append(
            Verdict(
                name=f"mlgate / minimal throughput ({how})",
                required=f">= {MINIMAL_THROUGHPUT_TARGET:.2f}x",
                measured=f"{ratio(mlgate, minimal):.2f}x "
                f"({mlgate.rps:.0f} vs {minimal.rps:.0f} req/s)",
                met=at_target and ratio(mlgate, minimal) >= MINIMAL_THROUGHPUT_TARGET,
            )
        )
    found.append(
        Verdict(
            name=f"mlgate / minimal p99 ({how})",
            required=f"<= {MINIMAL_P99_TARGET:.2f}x",
            measured=f"{p99_ratio(mlgate, minimal):.2f}x "
            f"({mlgate.p99_ms:.1f} vs {minimal.p99_ms:.1f} ms)",
            met=at_target and p99_ratio(mlgate, minimal) <= MINIMAL_P99_TARGET,
        )
    )
    if probot is not None and not rate:
        found.append(
            Verdict(
                name=f"stretch: mlgate / probot throughput ({how})",
                required=f">= {PROBOT_THROUGHPUT_STRETCH:.2f}x",
                measured=f"{ratio(mlgate, probot):.2f}x "
                f"({mlgate.rps:.0f} vs {probot.rps:.0f} req/s)",
                met=at_target and ratio(mlgate, probot) >= PROBOT_THROUGHPUT_STRETCH,
            )
        )
    return found


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: Sequence[tuple[Measurement, float]], baseline: str) -> str:
    """Rows of (measurement, its throughput ratio vs `baseline`) as an aligned text table."""
    header = (
        "round",
        "endpoint",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        f"vs {baseline}",
        "srv CPU ms/req",
        "client CPU",
        "other load",
    )
    body = [
        (
            str(m.round) if m.round else "all",
            m.endpoint,
            str(m.requests),
            f"{m.rps:.0f}",
            f"{m.p50_ms:.1f}",
            f"{m.p99_ms:.1f}",
            f"{m.max_ms:.1f}",
            str(m.errors),
            f"{r:.2f}",
            _cell(m.server_cpu_ms_per_request, ".2f"),
            f"{m.client_cpu_share:.0%}",
            _cell(m.other_load, ".2f"),
        )
        for m, r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
