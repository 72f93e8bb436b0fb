"""`python -m bench.webhook_ack.view_cost`: CPU per request of each web app and of mlgate's steps.

In one process and one thread, against the real Redis of REDIS_URL (default: an embedded
one): the WSGI call of mlgate, of the minimal honest endpoint and of the bare endpoint, with
the requests the load generator sends, and then each step of mlgate's accept path alone.
What gunicorn adds (HTTP parsing, the access log) is the same for all three and not here.
Thread CPU time, median of `--repeat` batches, so that other load on the machine disturbs
it less than wall time.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr
from typing import Any

import click
import redis
from flask import Flask
from rq import Queue
from rq.job import Job
from werkzeug.test import EnvironBuilder

from bench.webhook_ack import bare, minimal
from bench.webhook_ack.endpoints import key_prefix
from bench.webhook_ack.payloads import FIXTURES, MIX, PATH, compact_body
from bot import create_app, telemetry
from bot.core import signatures
from bot.embedded_redis import EmbeddedRedis
from bot.state import deliveries, queues
from bot.web.answers import answer

SECRET = "bench-view-cost-secret"


@contextmanager
def _redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url


def _cpu_us(calls: int, repeat: int, step: Callable[[int], object]) -> float:
    """Median thread CPU per call, in microseconds, of `repeat` batches of `calls` calls."""
    batches = []
    counter = 0
    for _ in range(repeat):
        started = time.thread_time_ns()
        for _ in range(calls):
            step(counter)
            counter += 1
        batches.append((time.thread_time_ns() - started) / calls / 1000)
    return statistics.median(batches)


def _environs(run: str, bodies: list[tuple[str, bytes]]) -> Callable[[int], dict[str, Any]]:
    """The n-th request as a WSGI environ: the mix in turn, a new delivery id each time."""
    signed = [(event, body, signatures.sign(SECRET, body)) for event, body in bodies]

    def environ(n: int) -> dict[str, Any]:
        event, body, signature = signed[n % len(signed)]
        builder = EnvironBuilder(
            path=PATH,
            method="POST",
            data=body,
            content_type="application/json",
            headers=[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", f"{run}-{n:012x}"),
                ("X-Hub-Signature-256", signature),
            ],
        )
        try:
            return builder.get_environ()
        finally:
            builder.close()

    return environ


def _wsgi_call(app: Flask, environ: Callable[[int], dict[str, Any]]) -> Callable[[int], object]:
    """Call the app as gunicorn does and read the whole answer; the environ is built outside
    the timed part (`_timed_wsgi`)."""

    def start_response(
        status: str, headers: list[tuple[str, str]], exc: Any = None
    ) -> Callable[[bytes], object]:
        if not status.startswith("2"):
            raise AssertionError(f"answer {status}")
        return lambda data: None  # the body comes back as the iterable

    def call(n: int) -> object:
        return b"".join(app.wsgi_app(environ(n), start_response))

    return call


def _timed_wsgi(
    app: Flask, environ: Callable[[int], dict[str, Any]], calls: int, repeat: int
) -> float:
    """The WSGI call alone: building the environs (werkzeug's test helper) is not timed."""
    call = _wsgi_call(app, lambda n: prepared[n % len(prepared)])
    prepared: list[dict[str, Any]] = []
    batches = []
    counter = 0
    for _ in range(repeat):
        prepared = [environ(counter + i) for i in range(calls)]
        started = time.thread_time_ns()
        for i in range(calls):
            call(i)
        batches.append((time.thread_time_ns() - started) / calls / 1000)
        counter += calls
    return statistics.median(batches)


def _clean(conn: redis.Redis, run: str) -> None:
    for pattern in (
        deliveries.delivery_key("github", f"{run}-*"),
        deliveries.payload_key("github", f"{run}-*"),
        f"{key_prefix(run, 'minimal')}:*",
    ):
        keys = list(conn.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            conn.delete(*keys[start : start + 1000])
    queue = Queue(queues.EVENTS, connection=conn)
    ours = [j for j in queue.get_job_ids() if j.startswith(f"github-{run}-")]
    with conn.pipeline(transaction=False) as pipe:
        for job_id in ours:
            pipe.lrem(queue.key, 0, job_id)
            pipe.delete(Job.key_for(job_id))
        pipe.execute()


@click.command()
@click.option("--calls", default=400, show_default=True, help="Requests per batch.")
@click.option("--repeat", default=9, show_default=True, help="Batches; the median is shown.")
def main(calls: int, repeat: int) -> None:
    """Microseconds of thread CPU per request: whole apps, then mlgate's steps one by one."""
    run = f"cost{os.getpid():x}"
    bodies = [(event, compact_body(FIXTURES / event / name)) for event, name in MIX]
    environ = _environs(run, bodies)
    results: list[tuple[str, float]] = []
    with ExitStack() as stack:
        url = stack.enter_context(_redis_url())
        conn = redis.Redis.from_url(url)
        stack.callback(_clean, conn, run)
        # As `mlgate serve` runs: Prometheus files in a directory, JSON log lines to stderr
        # (here a buffer that is emptied, not a terminal).
        metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-cost-"))
        os.environ.setdefault(telemetry.MULTIPROC_DIR, metrics_dir)
        log = io.StringIO()
        stack.enter_context(redirect_stderr(log))
        env = {
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "REDIS_URL": url,
            "BENCH_PREFIX": key_prefix(run, "minimal"),
        }
        os.environ.update(env)
        apps = {
            "bare (Flask 202)": bare.create_app(),
            "minimal (HMAC + 1 round trip)": minimal.create_app(),
            "mlgate": create_app(env),
        }
        for name, app in apps.items():
            _timed_wsgi(app, environ, calls, 1)  # warm: imports, script load, connections
            results.append((f"WSGI call: {name}", _timed_wsgi(app, environ, calls, repeat)))
            log.seek(0)
            log.truncate()

        # mlgate's steps, each alone, on the same bodies.
        body = bodies[0][1]
        signature = signatures.sign(SECRET, body)
        retry = create_app(env).extensions["mlgate"].settings.retry_delays
        steps: dict[str, Callable[[int], object]] = {
            "  signatures.well_formed + verify": lambda n: (
                signatures.well_formed(signature, prefixed=True),
                signatures.verify((SECRET,), body, signature, prefixed=True),
            ),
            "  hmac of the body alone (minimal's check)": lambda n: signatures.sign(SECRET, body),
            "  body.strip() (the shape check)": lambda n: body.strip(),
            "  queues._job_fields (rq's job hash)": lambda n: queues._job_fields(
                queues.HANDLE_GITHUB_EVENT, "github", f"{run}-x{n}", ("push", f"{run}-x{n}"), retry
            ),
            "  queues.accept_github_delivery (whole)": lambda n: queues.accept_github_delivery(
                conn, "push", f"{run}-a{n:012x}", body, retry
            ),
            "  minimal's Lua script call alone": _minimal_script(conn, run, body),
            "  redis PING (one round trip, floor)": lambda n: conn.ping(),
            "  answers.answer (log line + counter)": lambda n: answer(
                202,
                f"accepted: delivery {run}-{n}",
                duration_ms=1.0,
                delivery_id=f"{run}-{n}",
                event="push",
                source="github",
            ),
            "  telemetry histogram observe": lambda n: telemetry.metrics().webhook_seconds.observe(
                0.001
            ),
        }
        for name, step in steps.items():
            step(0)
            results.append((name, _cpu_us(calls, repeat, step)))
            log.seek(0)
            log.truncate()
    width = max(len(n) for n, _ in results)
    print(
        f"thread CPU per call, median of {repeat} x {calls} (us); Python {sys.version.split()[0]}"
    )
    for name, us in results:
        print(f"{name.ljust(width)}  {us:8.1f}")


def _minimal_script(conn: redis.Redis, run: str, body: bytes) -> Callable[[int], object]:
    prefix = key_prefix(run, "minimal")
    script = conn.register_script(minimal._CLAIM)
    inbox = minimal.inbox_key(prefix)
    return lambda n: script(
        keys=[minimal.payload_key(prefix, f"{run}-m{n}"), inbox], args=[body, 60, f"{run}-m{n}"]
    )


if __name__ == "__main__":
    main()
