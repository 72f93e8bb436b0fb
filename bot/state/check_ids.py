"""The id of each mlgate check run per (repository, head sha, name), and whether it completed."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

CHECK_ID_TTL = 90 * 24 * 3600


def _id_key(repo: str, sha: str, name: str) -> str:
    return key("check", repo, sha, name)


def check_id(conn: redis.Redis, repo: str, sha: str, name: str) -> tuple[int, bool] | None:
    """The check run's id and whether it is completed, if mlgate made one."""
    stored = conn.get(_id_key(repo, sha, name))
    if stored is None:
        return None
    check, _, state = text(stored).partition(":")
    return int(check), state == "completed"


def remember(
    conn: redis.Redis, repo: str, sha: str, name: str, check: int, completed: bool
) -> None:
    value = f"{check}:{'completed' if completed else 'running'}"
    conn.set(_id_key(repo, sha, name), value, ex=CHECK_ID_TTL)
