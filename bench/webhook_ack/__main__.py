"""`python -m bench.webhook_ack`: mlgate's webhook answer vs a bare Flask 202, same gunicorn."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis
from rq import Queue, Worker
from rq.job import Job

from bench.webhook_ack import stats
from bench.webhook_ack.loadgen import PhaseResult, run_phase
from bench.webhook_ack.payloads import MIX, Template, templates
from bench.webhook_ack.servers import (
    HOST,
    Server,
    ServerError,
    bare_argv,
    free_port,
    machine_cpu,
    mlgate_argv,
)
from bot.cli import GUNICORN_CONF
from bot.embedded_redis import EmbeddedRedis
from bot.errors import MlgateError
from bot.state import deliveries
from bot.state.queues import EVENTS

RESULTS = Path(__file__).resolve().parents[1] / "results"
BARE, MLGATE = "bare", "mlgate"
# Deleting delivery keys in batches keeps each DEL short for a Redis that others use too.
_DELETE_BATCH = 1000


@dataclass(frozen=True)
class Load:
    """How every phase loads its server."""

    concurrency: int
    max_requests: int
    rate: float
    run: str  # prefix of this run's delivery ids
    phases: Iterator[int]  # numbers the phases, so that delivery ids never repeat


@dataclass(frozen=True)
class QueueCheck:
    """After one mlgate round: the `events` queue must hold exactly one job per 202."""

    round: int
    accepted: int
    queued: int
    matching: int

    @property
    def ok(self) -> bool:
        return self.accepted == self.queued == self.matching


def _say(message: str = "") -> None:
    click.echo(message)
    sys.stdout.flush()


@contextmanager
def _redis_url() -> Iterator[tuple[str, bool]]:
    """REDIS_URL if set, else an embedded Redis that lives as long as the run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, False
        return
    try:
        with EmbeddedRedis() as embedded:
            yield embedded.url, True
    except MlgateError as exc:
        raise click.ClickException(str(exc)) from exc


def _refuse_busy_redis(conn: redis.Redis, url: str) -> bool:
    """The bench counts and then empties `events`: nobody else may use that queue meanwhile.

    True when rq already knew the queue, so that the run leaves rq's list of queues as it was.
    """
    queue = Queue(EVENTS, connection=conn)
    if queue.count:
        raise click.ClickException(
            f"the {EVENTS!r} queue at {url} already holds {queue.count} jobs; the bench must "
            "count only its own and empties the queue afterwards: unset REDIS_URL (an embedded "
            "Redis is started) or point it at an unused database, e.g. redis://127.0.0.1:6379/13"
        )
    workers = Worker.all(connection=conn, queue=queue)
    if workers:
        raise click.ClickException(
            f"{len(workers)} rq worker(s) listen on {EVENTS!r} at {url}: they would run the "
            "benchmark's jobs; stop them or point REDIS_URL at an unused database"
        )
    return bool(conn.sismember(Queue.redis_queues_keys, queue.key))


def _forget_queue(conn: redis.Redis) -> None:
    """Undo the one key rq adds besides the jobs: the queue in its set of known queues."""
    conn.srem(Queue.redis_queues_keys, Queue(EVENTS, connection=conn).key)


def _drain(conn: redis.Redis, round_: int, accepted: list[str]) -> QueueCheck:
    """Compare the queued job ids with the 202s, then delete the jobs and delivery ids."""
    queue = Queue(EVENTS, connection=conn)
    job_ids = queue.get_job_ids()
    expected = {f"github-{delivery}" for delivery in accepted}
    check = QueueCheck(round_, len(accepted), len(job_ids), len(expected.intersection(job_ids)))
    queue.empty()  # type: ignore[no-untyped-call]  # untyped in rq
    keys = [deliveries.delivery_key("github", delivery) for delivery in accepted]
    for start in range(0, len(keys), _DELETE_BATCH):
        conn.delete(*keys[start : start + _DELETE_BATCH])
    return check


def _remove_leftovers(conn: redis.Redis, run: str) -> None:
    """After an interrupted round: this run's jobs and delivery ids, and nothing else."""
    queue = Queue(EVENTS, connection=conn)
    job_ids = queue.get_job_ids()
    ours = [job_id for job_id in job_ids if job_id.startswith(f"github-{run}-")]
    if ours and len(ours) == len(job_ids):
        queue.empty()  # type: ignore[no-untyped-call]  # untyped in rq
    elif ours:
        with conn.pipeline(transaction=False) as pipe:
            for job_id in ours:
                pipe.lrem(queue.key, 0, job_id)
                pipe.delete(Job.key_for(job_id))
            pipe.execute()
    pattern = deliveries.delivery_key("github", f"{run}-*")
    keys = list(conn.scan_iter(match=pattern, count=_DELETE_BATCH))
    for start in range(0, len(keys), _DELETE_BATCH):
        conn.delete(*keys[start : start + _DELETE_BATCH])


def _terminate(servers: Iterable[Server]) -> None:
    for server in servers:
        server.terminate()


def _redis_cpu(conn: redis.Redis) -> float:
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _gunicorn_settings() -> dict[str, Any]:
    """What bot/gunicorn_conf.py decides in this environment (both servers share it)."""
    conf = vars(importlib.reload(importlib.import_module(GUNICORN_CONF.removeprefix("python:"))))
    return {k: conf[k] for k in ("workers", "worker_class", "threads", "keepalive", "accesslog")}


def _phase(
    server: Server, requests: tuple[Template, ...], load: Load, seconds: float
) -> PhaseResult:
    return run_phase(
        HOST,
        server.port,
        requests,
        run=load.run,
        phase=next(load.phases),
        concurrency=load.concurrency,
        duration=seconds,
        max_requests=load.max_requests,
        rate=load.rate,
    )


def _measure(
    server: Server,
    requests: tuple[Template, ...],
    load: Load,
    round_: int,
    warmup: float,
    duration: float,
    conn: redis.Redis | None,
) -> tuple[stats.Measurement, PhaseResult, list[str]]:
    """Warm up, then measure one endpoint: the summary, the raw result, the ids answered 202.

    `conn` is the Redis whose CPU counts toward this server's (mlgate's, not bare's).
    """
    warm = _phase(server, requests, load, warmup) if warmup else PhaseResult()
    machine_before = machine_cpu()
    gunicorn_before = server.cpu_seconds()
    redis_before = _redis_cpu(conn) if conn is not None else 0.0
    result = _phase(server, requests, load, duration)
    gunicorn_after = server.cpu_seconds()
    redis_after = _redis_cpu(conn) if conn is not None else 0.0
    machine_after = machine_cpu()
    try:
        server.check_alive()
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    m = stats.measurement(
        server.name,
        round_,
        result.latencies_ns,
        elapsed=result.elapsed,
        errors=result.errors,
        client_cpu=result.client_cpu,
        gunicorn_cpu=(
            None
            if gunicorn_before is None or gunicorn_after is None
            else gunicorn_after - gunicorn_before
        ),
        redis_cpu=redis_after - redis_before,
        machine_cpu=(
            None
            if machine_before is None or machine_after is None
            else machine_after - machine_before
        ),
    )
    problems = dict(result.failures) | {
        f"HTTP {status}": n for status, n in result.statuses.items() if status != 202
    }
    cpu = m.server_cpu_ms_per_request
    _say(
        f"round {round_} {m.endpoint:6}: {m.requests} requests, {m.rps:.0f} req/s, "
        f"p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms, errors {m.errors}"
        + (f" {problems}" if problems else "")
        + ("" if cpu is None else f", server CPU {cpu:.2f} ms/request")
        + (
            f" (Redis {m.redis_cpu * 1000 / m.requests:.2f})"
            if conn is not None and m.requests
            else ""
        )
    )
    return m, result, warm.accepted + result.accepted


@click.command()
@click.option("--concurrency", default=32, show_default=True, help="Keep-alive connections.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds per measurement.")
@click.option("--rounds", default=3, show_default=True, help="Measurements of each endpoint.")
@click.option("--warmup", default=3.0, show_default=True, help="Unmeasured seconds before each.")
@click.option(
    "--requests",
    "max_requests",
    default=0,
    show_default=True,
    help="Also stop a measurement after this many requests (0: duration only).",
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    help="Open loop: requests/s over all connections (0: closed loop, as fast as answered).",
)
@click.option(
    "--workers", type=int, help="WEB_CONCURRENCY for both servers (default: gunicorn.conf.py's)."
)
@click.option(
    "--threads", type=int, help="WEB_THREADS for both servers (default: gunicorn.conf.py's)."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON result (default: bench/results/webhook_ack-<time>.json).",
)
def main(
    concurrency: int,
    duration: float,
    rounds: int,
    warmup: float,
    max_requests: int,
    rate: float,
    workers: int | None,
    threads: int | None,
    output: Path | None,
) -> None:
    """Requests/s and p50/p99 latency of POST /webhooks/github with signed real payloads.

    mlgate (`mlgate serve`) and a bare Flask endpoint answering 202 run side by side under the
    same bot/gunicorn_conf.py, and are measured in alternating order, round after round.
    """
    if concurrency < 1 or duration <= 0 or rounds < 1:
        raise click.UsageError("--concurrency, --duration and --rounds must be positive")
    if warmup < 0 or max_requests < 0 or rate < 0:
        raise click.UsageError("--warmup, --requests and --rate must not be negative")
    # gunicorn.conf.py reads these; both servers inherit them, so their settings stay equal.
    if workers is not None:
        os.environ["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        os.environ["WEB_THREADS"] = str(threads)
    gunicorn = _gunicorn_settings()
    started_at = datetime.now(UTC)
    secret = f"bench-{secrets.token_hex(16)}"
    load = Load(concurrency, max_requests, rate, secrets.token_hex(4), itertools.count(1))
    measured: dict[str, list[stats.Measurement]] = {BARE: [], MLGATE: []}
    latencies: dict[str, list[int]] = {BARE: [], MLGATE: []}
    checks: list[QueueCheck] = []

    with ExitStack() as stack:
        url, embedded = stack.enter_context(_redis_url())
        conn = redis.Redis.from_url(url, socket_timeout=30)
        stack.callback(conn.close)
        if not _refuse_busy_redis(conn, url):
            stack.callback(_forget_queue, conn)
        stack.callback(_remove_leftovers, conn, load.run)
        _say(
            f"Redis: {'embedded, ' if embedded else 'REDIS_URL='}{url}"
            + ("" if embedded else f" (the {EVENTS!r} queue is emptied after each round)")
        )
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-bench-")))
        env = dict(os.environ, GITHUB_WEBHOOK_SECRET=secret, REDIS_URL=url)
        servers: dict[str, Server] = {}
        for name, argv in ((BARE, bare_argv), (MLGATE, mlgate_argv)):
            port = free_port()
            try:
                servers[name] = stack.enter_context(
                    Server(name, argv(port), env, port, logs / f"{name}.log")
                )
            except ServerError as exc:
                raise click.ClickException(str(exc)) from exc
        # Both shut down at once: each takes a couple of seconds to stop gracefully.
        stack.callback(_terminate, servers.values())
        requests = {n: templates(secret, f"{HOST}:{s.port}") for n, s in servers.items()}
        _say(
            f"gunicorn ({GUNICORN_CONF}): {gunicorn['workers']} workers x "
            f"{gunicorn['threads']} threads ({gunicorn['worker_class']}); "
            + ", ".join(f"{n} on :{s.port}" for n, s in servers.items())
        )
        if os.environ.get("GUNICORN_CMD_ARGS"):
            _say(f"GUNICORN_CMD_ARGS={os.environ['GUNICORN_CMD_ARGS']} applies to both servers")
        _say(
            f"load: {concurrency} keep-alive connections, "
            + (f"open loop at {rate:g} req/s" if rate else "closed loop")
            + f", {warmup:g} s warm-up + {duration:g} s per measurement, {rounds} rounds, "
            f"events: {', '.join(e for e, _ in MIX)}"
        )
        for round_ in range(1, rounds + 1):
            # Alternate who goes first, so that neither always gets the quieter moment.
            for name in (BARE, MLGATE) if round_ % 2 else (MLGATE, BARE):
                m, result, accepted = _measure(
                    servers[name],
                    requests[name],
                    load,
                    round_,
                    warmup,
                    duration,
                    conn if name == MLGATE else None,
                )
                measured[name].append(m)
                latencies[name].extend(result.latencies_ns)
                if name == MLGATE:
                    check = _drain(conn, round_, accepted)
                    checks.append(check)
                    _say(
                        f"round {round_} queue : {check.queued} jobs in {EVENTS!r} for "
                        f"{check.accepted} answers 202 ({check.matching} ids match)"
                        + ("" if check.ok else "  MISMATCH")
                        + "; emptied"
                    )

    bare = stats.pooled(BARE, measured[BARE], latencies[BARE])
    mlgate = stats.pooled(MLGATE, measured[MLGATE], latencies[MLGATE])
    rows = [
        (m, stats.ratio(m, b))
        for b, g in zip(measured[BARE], measured[MLGATE], strict=True)
        for m in (b, g)
    ]
    rows += [(bare, 1.0), (mlgate, stats.ratio(mlgate, bare))]
    verdicts = stats.verdicts(mlgate, bare, concurrency, rate)
    errors = bare.errors + mlgate.errors
    correct = [
        stats.Verdict("every answer 202", "0 errors", f"{errors} errors", errors == 0),
        stats.Verdict(
            f"one job in {EVENTS!r} per 202",
            "equal",
            f"{sum(c.queued for c in checks)} jobs / {sum(c.accepted for c in checks)} 202s",
            all(c.ok for c in checks),
        ),
    ]
    _say()
    _say(stats.table(rows))
    _say()
    for v in verdicts + correct:
        _say(f"{'met    ' if v.met else 'NOT MET'}  {v.name}: {v.measured} (target {v.required})")
    cpu_ratio = stats.cpu_ratio(mlgate, bare)
    if cpu_ratio is not None:
        _say(
            f"server CPU per request: mlgate {mlgate.server_cpu_ms_per_request:.2f} ms "
            f"(Redis {mlgate.redis_cpu * 1000 / max(mlgate.requests, 1):.2f}), "
            f"bare {bare.server_cpu_ms_per_request:.2f} ms: on CPU alone mlgate could serve "
            f"{cpu_ratio:.0%} of bare's requests/s"
        )

    result_file = output or RESULTS / f"webhook_ack-{started_at:%Y%m%dT%H%M%SZ}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "webhook_ack",
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "config": {
            "concurrency": concurrency,
            "duration_s": duration,
            "warmup_s": warmup,
            "rounds": rounds,
            "max_requests": max_requests,
            "rate": rate,
            "events": [f"{e}/{n}" for e, n in MIX],
            "redis": "embedded" if embedded else "REDIS_URL",
            "gunicorn": gunicorn,
        },
        "rounds": [_row(m, r) for m, r in rows if m.round],
        "summary": {m.endpoint: _row(m, r) for m, r in rows if not m.round},
        "cpu_ratio": cpu_ratio,
        "queue_checks": [asdict(c) | {"ok": c.ok} for c in checks],
        "targets": [asdict(v) for v in verdicts],
        "checks": [asdict(v) for v in correct],
    }
    result_file.write_text(json.dumps(report, indent=2) + "\n")
    _say(f"\nwritten: {result_file}")
    if not all(v.met for v in correct):
        sys.exit(1)


def _row(m: stats.Measurement, ratio: float) -> dict[str, Any]:
    return {
        "endpoint": m.endpoint,
        "round": m.round,
        "requests": m.requests,
        "elapsed_s": round(m.elapsed, 3),
        "rps": round(m.rps, 1),
        "p50_ms": round(m.p50_ms, 2),
        "p99_ms": round(m.p99_ms, 2),
        "max_ms": round(m.max_ms, 2),
        "errors": m.errors,
        "ratio_vs_bare": round(ratio, 3),
        "server_cpu_ms_per_request": m.server_cpu_ms_per_request,
        "redis_cpu_s": round(m.redis_cpu, 3),
        "client_cpu_share": round(m.client_cpu_share, 3),
        "other_load_cores": None if m.other_load is None else round(m.other_load, 2),
    }


if __name__ == "__main__":
    main()
