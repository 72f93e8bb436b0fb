"""Webhook delivery ids in Redis: a delivery is processed once, and again only if its job failed."""

from __future__ import annotations

from enum import StrEnum

import redis

from bot.state.redis_conn import key

# GitHub lets an operator redeliver a delivery for 3 days; keep ids a little longer.
DELIVERY_TTL = 8 * 24 * 3600


class DeliveryState(StrEnum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


def delivery_key(source: str, delivery_id: str) -> str:
    return key("delivery", source, delivery_id)


def payload_key(source: str, delivery_id: str) -> str:
    """Where a delivery's body waits for its job (ARCHITECTURE.md: the web stores the event)."""
    return key("payload", source, delivery_id)


def payload(conn: redis.Redis, source: str, delivery_id: str) -> bytes | None:
    body = conn.get(payload_key(source, delivery_id))
    return body if isinstance(body, bytes) else None


def drop_payload(conn: redis.Redis, source: str, delivery_id: str) -> None:
    """The delivery's job succeeded: its body is no longer needed (a redelivery stores it)."""
    conn.delete(payload_key(source, delivery_id))


def accepts(state: bytes | str | None) -> bool:
    """A delivery is (re)accepted when unseen or when its job failed for good."""
    if isinstance(state, bytes):
        state = state.decode()
    return state is None or state == DeliveryState.FAILED


def state(conn: redis.Redis, source: str, delivery_id: str) -> DeliveryState | None:
    value = conn.get(delivery_key(source, delivery_id))
    return DeliveryState(value.decode()) if isinstance(value, bytes) else None


def mark(conn: redis.Redis, source: str, delivery_id: str, new_state: DeliveryState) -> None:
    conn.set(delivery_key(source, delivery_id), new_state.value, ex=DELIVERY_TTL)
