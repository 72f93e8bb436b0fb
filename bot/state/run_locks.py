"""One evaluation per PR at a time: a second command's run waits for the first."""

from __future__ import annotations

import redis
from redis.lock import Lock

from bot.state.redis_conn import key


def pr_run_lock(conn: redis.Redis, repo: str, number: int, timeout: float) -> Lock:
    """The PR's run lock; held at most `timeout` seconds, and waited for as long."""
    lock: Lock = conn.lock(key("pr-run", repo, number), timeout=timeout, blocking_timeout=timeout)
    return lock


def monitor_lock(conn: redis.Redis, repo: str, env: str, timeout: float = 60) -> Lock:
    """One monitoring check of an environment at a time: two would open two issues."""
    lock: Lock = conn.lock(key("monitor", repo, env), timeout=timeout, blocking_timeout=timeout)
    return lock
