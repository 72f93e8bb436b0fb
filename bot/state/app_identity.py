"""The App's own identity as GitHub names it (its slug), cached so that GET /app is rare."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

# A slug changes only when the App is renamed on GitHub: a day of caching is one call a day.
SLUG_TTL = 24 * 3600


def cached_slug(conn: redis.Redis, app_id: str) -> str | None:
    found = conn.get(key("app", app_id, "slug"))
    return text(found) if found is not None else None


def remember_slug(conn: redis.Redis, app_id: str, slug: str) -> None:
    conn.set(key("app", app_id, "slug"), slug, ex=SLUG_TTL)
