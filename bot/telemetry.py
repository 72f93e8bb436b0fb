"""Prometheus metrics of every mlgate process, summed across processes (multiprocess mode).

Web (gunicorn workers), rq workers and their work horses each write their own mmap file in
`PROMETHEUS_MULTIPROC_DIR`; `GET /metrics` sums them (ARCHITECTURE.md, Operations). Metric
objects are made on first use, so that importing this module reads no environment.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.registry import Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# An rq work horse is forked per job; naming its file after its worker (which runs one horse
# at a time) keeps one file per worker instead of one per job.
_horse_of: int | None = None


def mark_horse() -> None:
    """Called in an rq work horse right after the fork."""
    global _horse_of
    _horse_of = os.getppid()


def _directory() -> str | None:
    """Where this process writes its figures; None: in memory only (one process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _identity() -> str:
    return f"horse{_horse_of}" if _horse_of is not None else str(os.getpid())


def use_directory(directory: Path) -> None:
    """Make this process (and its children) write to `directory`, unless one is set already;
    call before the first metric is used."""
    if _directory() is None:
        directory.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROC_DIR] = str(directory)


@dataclass(frozen=True)
class Metrics:
    """The metric names operators rely on (README, Operating)."""

    webhooks: Counter
    webhook_seconds: Histogram
    jobs: Counter
    job_seconds: Histogram
    github_requests: Counter
    github_rate_limit_remaining: Gauge
    evaluations: Counter


_made: Metrics | None = None
# gthread serves several requests of a new web process at once: two threads making the metric
# objects would register each name twice (prometheus-client raises on the second).
_making = threading.Lock()


def metrics() -> Metrics:
    """The metric objects of this process, made once (on first use, under a lock)."""
    global _made
    if _made is None:
        with _making:
            if _made is None:
                _made = _make()
    return _made


def _make() -> Metrics:
    if _directory() is not None:
        values.ValueClass = values.MultiProcessValue(_identity)  # type: ignore[no-untyped-call]
    return Metrics(
        webhooks=Counter(
            "mlgate_webhooks", "Webhook deliveries answered, by outcome", ["source", "outcome"]
        ),
        webhook_seconds=Histogram(
            "mlgate_webhook_seconds",
            "Time to answer a webhook delivery",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
        jobs=Counter("mlgate_jobs", "rq jobs finished", ["queue", "kind", "status"]),
        job_seconds=Histogram(
            "mlgate_job_seconds",
            "Time a job ran",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
        ),
        github_requests=Counter(
            "mlgate_github_requests", "GitHub API requests, by answer", ["method", "status"]
        ),
        github_rate_limit_remaining=Gauge(
            "mlgate_github_rate_limit_remaining",
            "x-ratelimit-remaining of the last GitHub answer, per installation",
            ["installation"],
            multiprocess_mode="mostrecent",
        ),
        evaluations=Counter("mlgate_evaluations", "Evaluations published", ["verdict"]),
    )


def exposition(*collectors: Collector) -> bytes:
    """The text format of every process's metrics, then `collectors`, read at scrape time."""
    metrics()  # the names exist even before anything happened
    if _directory() is not None:
        summed = CollectorRegistry()
        multiprocess.MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
        text = generate_latest(summed)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    for collector in collectors:
        extra.register(collector)
    return text + generate_latest(extra)


def serve(port: int) -> None:
    """Serve GET /metrics of this machine's processes from a thread (workers' own endpoint)."""
    metrics()
    registry = CollectorRegistry()
    if _directory() is not None:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    start_http_server(port, registry=registry)


def process_dead(pid: int) -> None:
    """gunicorn's child_exit: drop the live gauges of a web worker that ended."""
    if _directory() is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
