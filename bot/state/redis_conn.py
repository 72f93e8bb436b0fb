"""Redis connections with short timeouts, so that a dead Redis is an answer, not a hang."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# The web must answer 503 within a second when Redis is gone (docs/operating.md, Webhook answers).
CONNECT_TIMEOUT = 0.3
SOCKET_TIMEOUT = 0.5
KEY_PREFIX = "mlgate:"


def connect(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT) -> redis.Redis:
    """A client for `url` that fails fast; workers pass socket_timeout=None for blocking pops.

    One immediate retry replaces a pooled connection that went stale (Redis restarted);
    redis-py's default backoff would hold a webhook answer for seconds.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )


def key(*parts: object) -> str:
    """A namespaced key: key("delivery", "abc") == "mlgate:delivery:abc"."""
    return KEY_PREFIX + ":".join(str(p) for p in parts)


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes unless a client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value
