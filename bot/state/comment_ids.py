"""The id of each PR's sticky comment, and the lock that keeps two runs from creating two."""

from __future__ import annotations

import redis
from redis.lock import Lock

from bot.state.redis_conn import key

# A PR's comment id outlives the PR's activity by far; a month of quiet forgets it.
ID_TTL = 30 * 24 * 3600


def comment_id(conn: redis.Redis, repo: str, number: int) -> int | None:
    stored = conn.get(key("pr", repo, number, "comment"))
    return int(stored) if stored is not None else None


def remember(conn: redis.Redis, repo: str, number: int, comment: int) -> None:
    conn.set(key("pr", repo, number, "comment"), comment, ex=ID_TTL)


def comment_lock(conn: redis.Redis, repo: str, number: int, timeout: float) -> Lock:
    """A per-PR lock, freed after `timeout` seconds should its holder crash."""
    lock: Lock = conn.lock(key("pr", repo, number, "comment-lock"), timeout=timeout)
    return lock
