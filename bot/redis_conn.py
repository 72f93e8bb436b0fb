"""Redis connections with short timeouts, so that a dead Redis is an answer, not a hang."""

from __future__ import annotations

import redis

# The web must answer 503 within a second when Redis is gone (DESIGN.md, webhook answers).
CONNECT_TIMEOUT = 0.3
SOCKET_TIMEOUT = 0.5
KEY_PREFIX = "mlgate:"


def connect(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT) -> redis.Redis:
    """A client for `url` that fails fast; workers pass socket_timeout=None for blocking pops."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )


def key(*parts: object) -> str:
    """A namespaced key: key("delivery", "abc") == "mlgate:delivery:abc"."""
    return KEY_PREFIX + ":".join(str(p) for p in parts)
