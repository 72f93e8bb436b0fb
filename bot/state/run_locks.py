"""One evaluation per PR at a time: a second command's run waits for the first."""

from __future__ import annotations

import redis
from redis.lock import Lock

from bot.state.redis_conn import key, text

# Release only the holder's own lock: a run that was waiting for it never held it.
_RELEASE_IF_HELD_BY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _lock_key(repo: str, number: int) -> str:
    return key("pr-run", repo, number)


def pr_run_lock(conn: redis.Redis, repo: str, number: int, timeout: float) -> Lock:
    """The PR's run lock; held at most `timeout` seconds, and waited for as long.

    A run acquires it with its job id as the token (`lock.acquire(token=job_id)`), so that
    whoever takes back the run of a dead worker can free it (`release_if_held_by`).
    """
    lock: Lock = conn.lock(_lock_key(repo, number), timeout=timeout, blocking_timeout=timeout)
    return lock


def monitor_lock(conn: redis.Redis, repo: str, env: str, timeout: float = 60) -> Lock:
    """One monitoring check of an environment at a time: two would open two issues."""
    lock: Lock = conn.lock(key("monitor", repo, env), timeout=timeout, blocking_timeout=timeout)
    return lock


def holder(conn: redis.Redis, repo: str, number: int) -> str | None:
    """The token of the run holding the PR's lock; None when it is free."""
    value = conn.get(_lock_key(repo, number))
    return text(value) if isinstance(value, bytes | str) else None


def release_if_held_by(conn: redis.Redis, repo: str, number: int, token: str) -> bool:
    """Free the PR's lock if the run `token` holds it (its worker died); True if it did."""
    return bool(conn.eval(_RELEASE_IF_HELD_BY, 1, _lock_key(repo, number), token))
