"""Collaborator permission levels asked of GitHub, cached for a minute per (repository, user)."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

# Permissions change rarely; a minute of caching spares GitHub one call per command.
PERMISSION_TTL = 60


def cached_level(conn: redis.Redis, repo: str, user: str) -> str | None:
    cached = conn.get(key("permission", repo, user))
    return text(cached) if cached is not None else None


def remember_level(conn: redis.Redis, repo: str, user: str, found: str) -> None:
    conn.set(key("permission", repo, user), found, ex=PERMISSION_TTL)
