"""How many times mlgate asked GitHub to redeliver each webhook delivery guid, in Redis."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from bot.state.redis_conn import key


def counts(conn: redis.Redis, guids: Iterable[str]) -> dict[str, int]:
    """Redeliveries asked so far per guid; a guid never redelivered is absent."""
    ordered = sorted(set(guids))
    if not ordered:
        return {}
    values = conn.mget([key("redelivered", g) for g in ordered])
    return {g: int(v) for g, v in zip(ordered, values, strict=True) if v is not None}


def count(conn: redis.Redis, guid: str, keep_seconds: int) -> None:
    """Add one redelivery of `guid`; the count is forgotten `keep_seconds` after the last one."""
    counter = key("redelivered", guid)
    with conn.pipeline() as pipe:
        pipe.incr(counter)
        pipe.expire(counter, keep_seconds)
        pipe.execute()
