"""`python -m bench.webhook_ack.sizing 2x4 4x2 5x4`: mlgate under several gunicorn settings.

Each setting (workers x threads, gthread) is a `mlgate serve` of its own, all started at
once and measured one after the other under the same load, the order reversed every round,
as `python -m bench.webhook_ack` compares endpoints. On a shared machine this compares the
settings in the same moments, which one run per setting cannot.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from contextlib import ExitStack
from pathlib import Path

import click
import redis

from bench.webhook_ack import stats
from bench.webhook_ack.__main__ import (
    Load,
    _forget_queue,
    _measure,
    _redis_url,
    _refuse_busy_redis,
    _terminate,
)
from bench.webhook_ack.endpoints import ENDPOINTS, MLGATE, key_prefix
from bench.webhook_ack.payloads import templates
from bench.webhook_ack.servers import HOST, Server, ServerError, free_port


def _setting(text: str) -> tuple[int, int]:
    workers, _, threads = text.partition("x")
    if not (workers.isdigit() and threads.isdigit() and int(workers) and int(threads)):
        raise click.BadParameter(f"{text!r}: write WORKERSxTHREADS, e.g. 4x2")
    return int(workers), int(threads)


@click.command()
@click.argument("settings", nargs=-1, required=True)
@click.option("--concurrency", default=32, show_default=True, help="Keep-alive connections.")
@click.option("--duration", default=8.0, show_default=True, help="Seconds per measurement.")
@click.option("--rounds", default=4, show_default=True, help="Measurements of each setting.")
@click.option("--warmup", default=2.0, show_default=True, help="Unmeasured seconds before each.")
def main(
    settings: tuple[str, ...], concurrency: int, duration: float, rounds: int, warmup: float
) -> None:
    """Requests/s, p99 and server CPU per request of mlgate under each WORKERSxTHREADS."""
    chosen = {f"{w}x{t}": (w, t) for w, t in map(_setting, settings)}
    endpoint = ENDPOINTS[MLGATE]
    drain = endpoint.drain
    assert drain is not None  # mlgate queues a job per delivery
    secret = f"bench-{secrets.token_hex(16)}"
    load = Load(concurrency, 0, 0.0, secrets.token_hex(4), itertools.count(1))
    measured: dict[str, list[stats.Measurement]] = {name: [] for name in chosen}
    latencies: dict[str, list[int]] = {name: [] for name in chosen}
    with ExitStack() as stack:
        url, _ = stack.enter_context(_redis_url())
        conn = redis.Redis.from_url(url, socket_timeout=30)
        stack.callback(conn.close)
        if not _refuse_busy_redis(conn, url):
            stack.callback(_forget_queue, conn)
        stack.callback(endpoint.forget, conn, load.run, "")
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-sizing-")))
        servers: dict[str, Server] = {}
        for name, (workers, threads) in chosen.items():
            port = free_port()
            env = dict(
                os.environ,
                GITHUB_WEBHOOK_SECRET=secret,
                REDIS_URL=url,
                WEB_CONCURRENCY=str(workers),
                WEB_THREADS=str(threads),
            )
            try:
                servers[name] = stack.enter_context(
                    Server(name, endpoint.argv(port), env, port, logs / f"{name}.log")
                )
            except ServerError as exc:
                raise click.ClickException(str(exc)) from exc
        stack.callback(_terminate, servers.values())
        requests = {n: templates(secret, f"{HOST}:{s.port}") for n, s in servers.items()}
        names = list(chosen)
        click.echo(
            f"mlgate under {', '.join(names)} (gthread), {concurrency} connections, "
            f"{rounds} rounds x {duration:g} s; load average {os.getloadavg()[0]:.2f}"
        )
        for round_ in range(1, rounds + 1):
            for name in names if round_ % 2 else names[::-1]:
                m, result, acknowledged = _measure(
                    servers[name], endpoint, requests[name], load, round_, warmup, duration, conn
                )
                measured[name].append(m)
                latencies[name].extend(result.latencies_ns)
                drained = drain(conn, key_prefix(load.run, MLGATE), acknowledged)
                if drained.queued != len(acknowledged):
                    click.echo(f"  {name}: {drained.queued} jobs for {len(acknowledged)} 2xx")
    pooled = [stats.pooled(n, measured[n], latencies[n]) for n in names]
    best = max(p.rps for p in pooled)
    rows = [(p, p.rps / best) for p in pooled]
    click.echo()
    click.echo(stats.table(rows, "best"))


if __name__ == "__main__":
    main()
