"""GitHub installation tokens shared by every process in Redis, and the lock of their refresh."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from bot.state.redis_conn import key

# Delete the lock only if it is still ours: after expiry another process may hold it.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def cached(conn: redis.Redis, installation_id: int) -> str | None:
    """The installation's stored token; None when there is none (or it was dropped)."""
    value = conn.get(key("token", installation_id))
    return None if value is None else str(json.loads(value)["token"])


def store(
    conn: redis.Redis, installation_id: int, token: str, expires_at: str, ttl_ms: int
) -> None:
    """Keep `token` for `ttl_ms` milliseconds; a token with no time left is not kept."""
    if ttl_ms > 0:
        value = json.dumps({"token": token, "expires_at": expires_at})
        conn.set(key("token", installation_id), value, px=ttl_ms)


def forget(conn: redis.Redis, installation_id: int) -> None:
    """Drop the stored token, so that the next caller asks GitHub for a new one."""
    conn.delete(key("token", installation_id))


@contextmanager
def refresh_lock(conn: redis.Redis, installation_id: int, expiry_ms: int) -> Iterator[bool]:
    """Try to become the one process that asks GitHub for a token; yields whether it did.

    The lock expires after `expiry_ms`, so that a crashed holder frees it.
    """
    lock_key = key("token-lock", installation_id)
    nonce = secrets.token_hex(16)
    held = bool(conn.set(lock_key, nonce, nx=True, px=expiry_ms))
    try:
        yield held
    finally:
        if held:
            conn.eval(_RELEASE_LOCK, 1, lock_key, nonce)
