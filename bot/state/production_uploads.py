"""Live metrics uploaded from an environment (production), newest last, and its open issue."""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

from bot.core.metrics import MetricValue
from bot.core.monitoring import Observation
from bot.state.redis_conn import key, text
from bot.state.upload_tokens import require_repo

# Enough for any window and a trend; older uploads fall off the list.
KEEP = 500
STATE_TTL = 90 * 24 * 3600


def _series_key(repo: str, env: str) -> str:
    return key("production", require_repo(repo), env, "uploads")


def _issue_key(repo: str, env: str) -> str:
    return key("production", require_repo(repo), env, "issue")


def _environments_key(repo: str) -> str:
    """A set of the environments that uploaded, so that the dashboard can list them."""
    return key("production", require_repo(repo), "environments")


def record(
    conn: redis.Redis,
    repo: str,
    env: str,
    sha: str,
    path: str,
    metrics: Mapping[str, MetricValue],
    now: float,
) -> None:
    """Append one upload to the environment's series (bounded to the newest KEEP)."""
    entry = json.dumps({"at": now, "sha": sha, "metrics": {path: dict(metrics)}})
    series = _series_key(repo, env)
    with conn.pipeline(transaction=True) as pipe:
        pipe.rpush(series, entry)
        pipe.ltrim(series, -KEEP, -1)
        pipe.expire(series, STATE_TTL)
        pipe.sadd(_environments_key(repo), env)
        pipe.expire(_environments_key(repo), STATE_TTL)
        pipe.execute()


def environments(conn: redis.Redis, repo: str) -> list[str]:
    """Every environment of `repo` that uploaded live metrics, sorted by name."""
    return sorted(text(m) for m in conn.smembers(_environments_key(repo)))


def recent(conn: redis.Redis, repo: str, env: str, count: int = KEEP) -> list[Observation]:
    """The newest `count` uploads, oldest first."""
    raw: list[bytes] = conn.lrange(_series_key(repo, env), -count, -1)  # type: ignore[assignment]
    found = []
    for item in raw:
        entry = json.loads(item)
        found.append(Observation(float(entry["at"]), str(entry["sha"]), entry["metrics"]))
    return found


def open_issue(conn: redis.Redis, repo: str, env: str) -> int | None:
    """The number of the environment's open monitoring issue, as mlgate last left it."""
    raw = conn.get(_issue_key(repo, env))
    return int(text(raw)) if raw is not None else None


def set_open_issue(conn: redis.Redis, repo: str, env: str, number: int | None) -> None:
    if number is None:
        conn.delete(_issue_key(repo, env))
    else:
        conn.set(_issue_key(repo, env), number, ex=STATE_TTL)
