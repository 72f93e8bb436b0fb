"""`python -m bench.webhook_ack`: mlgate's webhook answer against three baselines, same run."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import redis
from rq import Queue, Worker

from bench.webhook_ack import stats
from bench.webhook_ack.endpoints import (
    BARE,
    ENDPOINTS,
    MINIMAL,
    MLGATE,
    PROBOT,
    Endpoint,
    ProbotUnavailable,
    key_prefix,
    prepare_probot,
)
from bench.webhook_ack.loadgen import PhaseResult, run_phase
from bench.webhook_ack.payloads import MIX, Template, templates
from bench.webhook_ack.servers import HOST, Server, ServerError, free_port, machine_cpu
from bot.cli import GUNICORN_CONF
from bot.embedded_redis import EmbeddedRedis
from bot.errors import MlgateError
from bot.state.queues import EVENTS

RESULTS = Path(__file__).resolve().parents[1] / "results"


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
    """After one round of an endpoint: exactly one queued job per delivery answered 2xx."""

    endpoint: str
    round: int
    acknowledged: int
    queued: int
    matching: int

    @property
    def ok(self) -> bool:
        return self.acknowledged == self.queued == self.matching


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


def _terminate(servers: Iterable[Server]) -> None:
    for server in servers:
        server.terminate()


def _redis_cpu(conn: redis.Redis) -> float:
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _gunicorn_settings() -> dict[str, Any]:
    """What bot/gunicorn_conf.py decides in this environment (the gunicorn servers share it)."""
    conf = vars(importlib.reload(importlib.import_module(GUNICORN_CONF.removeprefix("python:"))))
    return {k: conf[k] for k in ("workers", "worker_class", "threads", "keepalive", "accesslog")}


def _measure(
    server: Server,
    endpoint: Endpoint,
    requests: tuple[Template, ...],
    load: Load,
    round_: int,
    warmup: float,
    duration: float,
    conn: redis.Redis,
) -> tuple[stats.Measurement, PhaseResult, list[str]]:
    """Warm up, then measure one endpoint: the summary, the raw result, the ids answered 2xx."""

    def phase(seconds: float) -> PhaseResult:
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
            accepted_status=endpoint.accepted_status,
        )

    warm = phase(warmup) if warmup else PhaseResult()
    machine_before = machine_cpu()
    server_before = server.cpu_seconds()
    redis_before = _redis_cpu(conn)
    result = phase(duration)
    server_after = server.cpu_seconds()
    redis_after = _redis_cpu(conn)
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
            None if server_before is None or server_after is None else server_after - server_before
        ),
        # Redis's CPU is part of the cost of the endpoints that use it, and of nobody else.
        redis_cpu=redis_after - redis_before if endpoint.uses_redis else 0.0,
        machine_cpu=(
            None
            if machine_before is None or machine_after is None
            else machine_after - machine_before
        ),
    )
    problems = _problems(result, endpoint)
    if warm.errors:
        _say(f"round {round_} {m.endpoint:7}: warm-up errors {_problems(warm, endpoint)}")
    cpu = m.server_cpu_ms_per_request
    _say(
        f"round {round_} {m.endpoint:7}: {m.requests} requests, {m.rps:.0f} req/s, "
        f"p50 {m.p50_ms:.1f} ms, p99 {m.p99_ms:.1f} ms, errors {m.errors}"
        + (f" {problems}" if problems else "")
        + ("" if cpu is None else f", server CPU {cpu:.2f} ms/request")
        + (
            f" (Redis {m.redis_cpu * 1000 / m.requests:.2f})"
            if endpoint.uses_redis and m.requests
            else ""
        )
        + ("" if m.other_load is None else f", other load {m.other_load:.2f} cores")
    )
    return m, result, warm.acknowledged + result.acknowledged


def _problems(result: PhaseResult, endpoint: Endpoint) -> dict[str, int]:
    return dict(result.failures) | {
        f"HTTP {status}": n
        for status, n in result.statuses.items()
        if status != endpoint.accepted_status
    }


def _endpoints(chosen: str, probot: bool) -> list[Endpoint]:
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENDPOINTS))
    if unknown:
        raise click.UsageError(f"unknown endpoint(s) {unknown}; choose from {list(ENDPOINTS)}")
    if not probot:
        names = [n for n in names if n != PROBOT]
    # Always in the same order, mlgate next to the minimal endpoint it is held against.
    return [e for n, e in ENDPOINTS.items() if n in names]


def _ratio_baseline(names: Sequence[str]) -> str:
    """The endpoint the table's ratio column divides by: the minimal one if measured."""
    return next((n for n in (MINIMAL, BARE) if n in names), names[0])


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
    "--endpoints",
    "chosen",
    default=",".join(ENDPOINTS),
    show_default=True,
    help="Which servers to measure, comma-separated.",
)
@click.option(
    "--probot/--no-probot",
    default=True,
    show_default=True,
    help="Measure the Probot + BullMQ baseline (needs node; runs `npm ci` when needed).",
)
@click.option(
    "--probot-processes",
    default=1,
    show_default=True,
    help="Node processes of the Probot baseline (node:cluster); `probot run` runs one.",
)
@click.option(
    "--workers", type=int, help="WEB_CONCURRENCY for the gunicorn servers (default: the conf's)."
)
@click.option(
    "--threads", type=int, help="WEB_THREADS for the gunicorn servers (default: the conf's)."
)
@click.option(
    "--keep-logs",
    is_flag=True,
    help="Keep the servers' logs beside the JSON result (default: deleted after the run).",
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
    chosen: str,
    probot: bool,
    probot_processes: int,
    workers: int | None,
    threads: int | None,
    keep_logs: bool,
    output: Path | None,
) -> None:
    """Requests/s and p50/p99 latency of POST /webhooks/github with signed real payloads.

    mlgate (`mlgate serve`), the minimal honest endpoint (HMAC + one Redis round trip) and a
    bare Flask 202 run side by side under the same bot/gunicorn_conf.py; Probot + BullMQ
    (Node) does the same claim-and-queue as mlgate. They are measured one after the other,
    the order reversed every round.
    """
    if concurrency < 1 or duration <= 0 or rounds < 1 or probot_processes < 1:
        raise click.UsageError(
            "--concurrency, --duration, --rounds and --probot-processes must be positive"
        )
    if warmup < 0 or max_requests < 0 or rate < 0:
        raise click.UsageError("--warmup, --requests and --rate must not be negative")
    endpoints = _endpoints(chosen, probot)
    if not endpoints:
        raise click.UsageError("no endpoint left to measure")
    names = [e.name for e in endpoints]
    node_versions = None
    if PROBOT in names:
        try:
            node_versions = prepare_probot(_say)
        except ProbotUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    # gunicorn_conf.py reads these; every gunicorn server inherits them, so they stay equal.
    if workers is not None:
        os.environ["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        os.environ["WEB_THREADS"] = str(threads)
    gunicorn = _gunicorn_settings()
    started_at = datetime.now(UTC)
    result_file = output or RESULTS / f"webhook_ack-{started_at:%Y%m%dT%H%M%SZ}.json"
    load_average = os.getloadavg()
    secret = f"bench-{secrets.token_hex(16)}"
    load = Load(concurrency, max_requests, rate, secrets.token_hex(4), itertools.count(1))
    measured: dict[str, list[stats.Measurement]] = {n: [] for n in names}
    latencies: dict[str, list[int]] = {n: [] for n in names}
    checks: list[QueueCheck] = []

    with ExitStack() as stack:
        url, embedded = stack.enter_context(_redis_url())
        conn = redis.Redis.from_url(url, socket_timeout=30)
        stack.callback(conn.close)
        if MLGATE in names and not _refuse_busy_redis(conn, url):
            stack.callback(_forget_queue, conn)
        for e in endpoints:
            stack.callback(e.forget, conn, load.run, key_prefix(load.run, e.name))
        _say(
            f"Redis: {'embedded, ' if embedded else 'REDIS_URL='}{url}"
            + ("" if embedded else " (each endpoint's queue is emptied after each round)")
        )
        if keep_logs:
            logs = result_file.with_suffix(".logs")
            logs.mkdir(parents=True, exist_ok=True)
            _say(f"server logs: {logs}")
        else:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-bench-")))
        env = dict(
            os.environ,
            GITHUB_WEBHOOK_SECRET=secret,
            REDIS_URL=url,
            PROBOT_PROCESSES=str(probot_processes),
        )
        servers: dict[str, Server] = {}
        for e in endpoints:
            port = free_port()
            try:
                servers[e.name] = stack.enter_context(
                    Server(
                        e.name,
                        e.argv(port),
                        e.env(env, port, key_prefix(load.run, e.name)),
                        port,
                        logs / f"{e.name}.log",
                        health_path=e.health_path,
                    )
                )
            except (ServerError, ProbotUnavailable) as exc:
                raise click.ClickException(str(exc)) from exc
        # All shut down at once: each takes a couple of seconds to stop gracefully.
        stack.callback(_terminate, servers.values())
        requests = {n: templates(secret, f"{HOST}:{s.port}") for n, s in servers.items()}
        _say(
            f"gunicorn ({GUNICORN_CONF}): {gunicorn['workers']} workers x "
            f"{gunicorn['threads']} threads ({gunicorn['worker_class']}), keepalive "
            f"{gunicorn['keepalive']} s"
            + (
                f"; probot: {probot_processes} node process(es), {node_versions}"
                if node_versions
                else ""
            )
        )
        for e in endpoints:
            _say(f"  {e.name:7} on :{servers[e.name].port}  {e.description}")
        if os.environ.get("GUNICORN_CMD_ARGS"):
            _say(f"GUNICORN_CMD_ARGS={os.environ['GUNICORN_CMD_ARGS']} applies to gunicorn servers")
        _say(
            f"load: {concurrency} keep-alive connections, "
            + (f"open loop at {rate:g} req/s" if rate else "closed loop")
            + f", {warmup:g} s warm-up + {duration:g} s per measurement, {rounds} rounds, "
            f"events: {', '.join(e for e, _ in MIX)}; load average at start "
            + " ".join(f"{a:.2f}" for a in load_average)
        )
        for round_ in range(1, rounds + 1):
            # Reverse the order every round, so that none always gets the quieter moment.
            for e in endpoints if round_ % 2 else endpoints[::-1]:
                m, result, acknowledged = _measure(
                    servers[e.name], e, requests[e.name], load, round_, warmup, duration, conn
                )
                measured[e.name].append(m)
                latencies[e.name].extend(result.latencies_ns)
                if e.drain is not None:
                    drained = e.drain(conn, key_prefix(load.run, e.name), acknowledged)
                    check = QueueCheck(
                        e.name, round_, len(acknowledged), drained.queued, drained.matching
                    )
                    checks.append(check)
                    _say(
                        f"round {round_} {e.name:7}: {check.queued} jobs queued for "
                        f"{check.acknowledged} answered 2xx ({check.matching} ids match)"
                        + ("" if check.ok else "  MISMATCH")
                        + "; deleted"
                    )

    _report(
        names=names,
        measured=measured,
        latencies=latencies,
        checks=checks,
        concurrency=concurrency,
        rate=rate,
        meta={
            "benchmark": "webhook_ack",
            "started_at": started_at.isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "load_average_at_start": [round(a, 2) for a in load_average],
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
                "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
                "probot": node_versions,
                "probot_processes": probot_processes,
            },
        },
        output=result_file,
    )


def _report(
    *,
    names: list[str],
    measured: dict[str, list[stats.Measurement]],
    latencies: dict[str, list[int]],
    checks: list[QueueCheck],
    concurrency: int,
    rate: float,
    meta: dict[str, Any],
    output: Path,
) -> None:
    """The table, the verdicts and the JSON file; exit status 1 if a correctness check failed."""
    pooled = {n: stats.pooled(n, measured[n], latencies[n]) for n in names}
    base = _ratio_baseline(names)
    rows = [
        (measured[n][i], stats.ratio(measured[n][i], measured[base][i]))
        for i in range(len(measured[base]))
        for n in names
    ]
    rows += [(pooled[n], stats.ratio(pooled[n], pooled[base])) for n in names]
    verdicts = (
        stats.verdicts(pooled[MLGATE], pooled[MINIMAL], pooled.get(PROBOT), concurrency, rate)
        if MLGATE in names and MINIMAL in names
        else []
    )
    errors = sum(p.errors for p in pooled.values())
    correct = [
        stats.Verdict("every answer accepted", "0 errors", f"{errors} errors", errors == 0),
        stats.Verdict(
            "one queued job per delivery answered 2xx",
            "equal",
            f"{sum(c.queued for c in checks)} jobs / "
            f"{sum(c.acknowledged for c in checks)} answered 2xx",
            all(c.ok for c in checks),
        ),
    ]
    _say()
    _say(stats.table(rows, base))
    _say()
    for v in verdicts + correct:
        _say(f"{'met    ' if v.met else 'NOT MET'}  {v.name}: {v.measured} (target {v.required})")
    if MLGATE in names:
        mlgate = pooled[MLGATE]
        for other in (n for n in names if n != MLGATE):
            per_round = [
                stats.ratio(g, o) for g, o in zip(measured[MLGATE], measured[other], strict=True)
            ]
            cpu = stats.cpu_ratio(mlgate, pooled[other])
            _say(
                f"mlgate / {other}: {stats.ratio(mlgate, pooled[other]):.2f}x req/s "
                f"(rounds {min(per_round):.2f} to {max(per_round):.2f}), "
                f"{stats.p99_ratio(mlgate, pooled[other]):.2f}x p99"
                + ("" if cpu is None else f"; on server CPU per request alone {cpu:.2f}x")
            )
    _say(
        "server CPU per request (ms, Redis included where used): "
        + ", ".join(f"{n} {_fmt(pooled[n].server_cpu_ms_per_request)}" for n in names)
    )
    report = meta | {
        "rounds": [_row(m, r) for m, r in rows if m.round],
        "summary": {m.endpoint: _row(m, r) for m, r in rows if not m.round},
        "ratio_baseline": base,
        "queue_checks": [asdict(c) | {"ok": c.ok} for c in checks],
        "targets": [asdict(v) for v in verdicts],
        "checks": [asdict(v) for v in correct],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    _say(f"\nwritten: {output}")
    if not all(v.met for v in correct):
        sys.exit(1)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


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
        "ratio_vs_baseline": round(ratio, 3),
        "server_cpu_ms_per_request": m.server_cpu_ms_per_request,
        "redis_cpu_s": round(m.redis_cpu, 3),
        "client_cpu_share": round(m.client_cpu_share, 3),
        "other_load_cores": None if m.other_load is None else round(m.other_load, 2),
    }


if __name__ == "__main__":
    main()
