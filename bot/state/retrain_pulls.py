"""The retrain PRs mlgate opened on each repository and has not seen closed, for the dashboard."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from bot.state.redis_conn import key

STATE_TTL = 90 * 24 * 3600


@dataclass(frozen=True)
class RetrainPull:
    """An open retrain PR (label `mlgate:retrain`): its branch, head and when it last moved."""

    number: int
    title: str
    branch: str
    head_sha: str
    at: float


def _key(repo: str) -> str:
    """A hash: PR number -> the PR as JSON."""
    return key("retrain-pulls", repo)


def record_open(conn: redis.Redis, repo: str, pull: RetrainPull) -> None:
    """The retrain loop opened `pull`, or moved its branch: one entry per PR number."""
    with conn.pipeline(transaction=True) as pipe:
        pipe.hset(_key(repo), str(pull.number), json.dumps(asdict(pull)))
        pipe.expire(_key(repo), STATE_TTL)
        pipe.execute()


def record_closed(conn: redis.Redis, repo: str, number: int) -> None:
    """The PR was merged or closed: no longer listed."""
    conn.hdel(_key(repo), str(number))


def open_pulls(conn: redis.Redis, repo: str) -> list[RetrainPull]:
    """The open retrain PRs of `repo`, the most recently moved first."""
    found = []
    for raw in conn.hvals(_key(repo)):
        try:
            found.append(RetrainPull(**json.loads(raw)))
        except (ValueError, TypeError):
            continue
    return sorted(found, key=lambda p: (-p.at, -p.number))
