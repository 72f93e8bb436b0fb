"""The four servers the bench compares: how each starts, what it answers, what it must queue."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job

from bench.webhook_ack import minimal
from bench.webhook_ack.servers import HOST
from bot.cli import GUNICORN_CONF
from bot.state import deliveries
from bot.state.queues import EVENTS

PROBOT_DIR = Path(__file__).resolve().parent / "probot"
# Probot 14's engines field.
MIN_NODE = (20, 18, 1)
# The BullMQ queue of probot/server.js.
PROBOT_QUEUE = "events"
# Deleting keys in batches keeps each DEL short for a Redis that others use too.
_DELETE_BATCH = 1000

BARE, MINIMAL, MLGATE, PROBOT = "bare", "minimal", "mlgate", "probot"


class ProbotUnavailable(Exception):
    """Node.js or the npm packages of the Probot baseline are missing; the message says what
    to run."""


@dataclass(frozen=True)
class Drained:
    """What an endpoint queued for the ids it answered 2xx, before it was deleted."""

    queued: int
    matching: int


@dataclass(frozen=True)
class Endpoint:
    """One server under test."""

    name: str
    description: str
    accepted_status: int  # what it answers a new, valid delivery
    uses_redis: bool  # Redis's CPU counts toward its own
    health_path: str
    argv: Callable[[int], list[str]]
    # Its environment: from the bench's (secret and REDIS_URL set), its port and key prefix.
    env: Callable[[Mapping[str, str], int, str], dict[str, str]]
    # Count what it queued for the ids it answered 2xx, then delete it: (conn, prefix, ids).
    drain: Callable[[redis.Redis, str, list[str]], Drained] | None
    # Delete whatever a run left behind, also after Ctrl-C: (conn, run id, prefix).
    forget: Callable[[redis.Redis, str, str], None]


def key_prefix(run: str, endpoint: str) -> str:
    """Every key of a baseline starts with this; the run id keeps runs apart."""
    return f"mlgate-bench:{run}:{endpoint}"


def _gunicorn(app: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        # The very config `mlgate serve` uses, so that the settings stay equal.
        return [
            sys.executable, "-m", "gunicorn",
            "--config", GUNICORN_CONF,
            "--bind", f"{HOST}:{port}",
            app,
        ]  # fmt: skip

    return argv


def _mlgate_argv(port: int) -> list[str]:
    """`mlgate serve`, exactly as operators run it."""
    return [sys.executable, "-m", "bot.cli", "serve", "--bind", f"{HOST}:{port}"]


def _probot_argv(port: int) -> list[str]:
    return [node_path(), str(PROBOT_DIR / "server.js")]


def _same_env(base: Mapping[str, str], port: int, prefix: str) -> dict[str, str]:
    return dict(base, BENCH_PREFIX=prefix)


def _probot_env(base: Mapping[str, str], port: int, prefix: str) -> dict[str, str]:
    return dict(
        base,
        BENCH_PREFIX=prefix,
        PORT=str(port),
        HOST=HOST,
        WEBHOOK_SECRET=base["GITHUB_WEBHOOK_SECRET"],
        WEBHOOK_PATH="/webhooks/github",
    )


def _delete(conn: redis.Redis, keys: list[str]) -> None:
    for start in range(0, len(keys), _DELETE_BATCH):
        conn.delete(*keys[start : start + _DELETE_BATCH])


def _delete_matching(conn: redis.Redis, pattern: str) -> None:
    _delete(conn, [k.decode() for k in conn.scan_iter(match=pattern, count=_DELETE_BATCH)])


def _matching(listed: Sequence[bytes | str], expected: set[str]) -> Drained:
    ids = [i.decode() if isinstance(i, bytes) else i for i in listed]
    return Drained(len(ids), len(expected.intersection(ids)))


def _drain_mlgate(conn: redis.Redis, prefix: str, acknowledged: list[str]) -> Drained:
    """rq's `events` queue must hold job `github-<id>` per 2xx; then jobs, claims and bodies go."""
    queue = Queue(EVENTS, connection=conn)
    found = _matching(queue.get_job_ids(), {f"github-{d}" for d in acknowledged})
    queue.empty()  # type: ignore[no-untyped-call]  # untyped in rq
    _delete(conn, [deliveries.delivery_key("github", d) for d in acknowledged])
    _delete(conn, [deliveries.payload_key("github", d) for d in acknowledged])
    return found


def _forget_mlgate(conn: redis.Redis, run: str, prefix: str) -> None:
    """This run's jobs, delivery ids and bodies, and nothing else."""
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
    _delete_matching(conn, deliveries.delivery_key("github", f"{run}-*"))
    _delete_matching(conn, deliveries.payload_key("github", f"{run}-*"))


def _drain_minimal(conn: redis.Redis, prefix: str, acknowledged: list[str]) -> Drained:
    """Its inbox must list each id answered 2xx; then the inbox and the bodies go."""
    inbox = minimal.inbox_key(prefix)
    found = _matching(conn.lrange(inbox, 0, -1), set(acknowledged))
    _delete(conn, [inbox, *(minimal.payload_key(prefix, d) for d in acknowledged)])
    return found


def _drain_probot(conn: redis.Redis, prefix: str, acknowledged: list[str]) -> Drained:
    """BullMQ's wait list must hold job <id> per 2xx; then the jobs, claims and event log go.

    BullMQ's own bookkeeping (`id`, `meta`, `marker`) stays until the end of the run: the
    Queue in the server still uses it.
    """
    queue = f"{prefix}:{PROBOT_QUEUE}"
    found = _matching(conn.lrange(f"{queue}:wait", 0, -1), set(acknowledged))
    _delete(conn, [f"{queue}:wait", f"{queue}:events"])
    _delete(conn, [f"{queue}:{d}" for d in acknowledged])
    _delete(conn, [f"{prefix}:delivery:{d}" for d in acknowledged])
    return found


def _forget_prefix(conn: redis.Redis, run: str, prefix: str) -> None:
    _delete_matching(conn, f"{prefix}:*")


def _forget_nothing(conn: redis.Redis, run: str, prefix: str) -> None:
    pass


ENDPOINTS = {
    e.name: e
    for e in (
        Endpoint(
            BARE,
            "Flask reading the body and answering 202 (the ceiling)",
            202,
            False,
            "/healthz",
            _gunicorn("bench.webhook_ack.bare:create_app()"),
            _same_env,
            None,
            _forget_nothing,
        ),
        Endpoint(
            MINIMAL,
            "Flask + HMAC + one Redis round trip (SET NX of the body, RPUSH of the id)",
            202,
            True,
            "/healthz",
            _gunicorn("bench.webhook_ack.minimal:create_app()"),
            _same_env,
            _drain_minimal,
            _forget_prefix,
        ),
        Endpoint(
            MLGATE,
            "mlgate serve",
            202,
            True,
            "/healthz",
            _mlgate_argv,
            _same_env,
            _drain_mlgate,
            _forget_mlgate,
        ),
        Endpoint(
            PROBOT,
            "Probot 14 + ioredis SET NX + BullMQ add (Node)",
            200,  # Probot answers 200 once its handlers are done
            True,
            "/ping",
            _probot_argv,
            _probot_env,
            _drain_probot,
            _forget_prefix,
        ),
    )
}


def node_path() -> str:
    node = shutil.which("node")
    if node is None:
        raise ProbotUnavailable(
            "node is not on PATH: install Node.js >= "
            + ".".join(map(str, MIN_NODE))
            + " (Probot 14 needs it), or leave the Probot baseline out with --no-probot"
        )
    return node


def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\s*", out)
    return tuple(int(p) for p in found.groups()) if found else (0,)


def prepare_probot(say: Callable[[str], None]) -> str:
    """Check node, and `npm ci` the baseline's locked packages when they are missing or stale.

    Returns the versions in use, for the report.
    """
    node = node_path()
    version = _node_version(node)
    if version < MIN_NODE:
        raise ProbotUnavailable(
            f"{node} is Node.js {'.'.join(map(str, version))}; Probot 14 needs >= "
            + ".".join(map(str, MIN_NODE))
            + ": install a newer one, or pass --no-probot"
        )
    lock = PROBOT_DIR / "package-lock.json"
    # npm writes this file last in `npm ci`: a copy older than the lock file is stale.
    installed = PROBOT_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        how = f"run `npm ci` in {PROBOT_DIR}, or pass --no-probot"
        if npm is None:
            raise ProbotUnavailable(f"npm is not on PATH, and the Probot baseline needs it: {how}")
        say(f"installing the Probot baseline's locked packages: npm ci in {PROBOT_DIR}")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROBOT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
            raise ProbotUnavailable(f"`npm ci` failed in {PROBOT_DIR}:\n{tail}\n{how}")
    versions = [f"node {'.'.join(map(str, version))}"]
    for package in ("probot", "bullmq", "ioredis"):
        manifest = PROBOT_DIR / "node_modules" / package / "package.json"
        found = re.search(r'"version":\s*"([^"]+)"', manifest.read_text())
        versions.append(f"{package} {found.group(1) if found else '?'}")
    return ", ".join(versions)
