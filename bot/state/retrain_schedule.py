"""The retrain scheduler's memory: its last tick per repository, schedules per sha, fire claims."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

# A commit's configuration never changes; a day of ticks reads it once.
SCHEDULE_TTL = 24 * 3600
# A fire time is claimed once; after a week no tick can reach back to it (cron.DUE_LIMIT).
FIRE_TTL = 7 * 24 * 3600
# Ticks are forgotten when a repository is gone long enough; its next tick starts afresh.
TICK_TTL = 30 * 24 * 3600
_NONE = ""


def take_tick(conn: redis.Redis, repo: str, now: float) -> float | None:
    """Record `now` as the repository's last tick and return the one before it (None: the
    first). One atomic swap, so two schedulers ticking together split the time between them
    and never both see the same fire time due."""
    previous = conn.set(key("retrain-tick", repo.lower()), repr(now), ex=TICK_TTL, get=True)
    return float(text(previous)) if isinstance(previous, bytes | str) else None


def cached_schedule(conn: redis.Redis, repo: str, sha: str) -> tuple[bool, str | None]:
    """(`known`, `schedule`): the `retrain.schedule` of the config at `sha`, if read before."""
    raw = conn.get(key("retrain-schedule", repo.lower(), sha))
    if raw is None:
        return False, None
    value = text(raw)
    return True, value if value != _NONE else None


def remember_schedule(conn: redis.Redis, repo: str, sha: str, schedule: str | None) -> None:
    """Remember the schedule of the config at `sha` (None: no schedule, or no valid config)."""
    conn.set(key("retrain-schedule", repo.lower(), sha), schedule or _NONE, ex=SCHEDULE_TTL)


def claim_fire(conn: redis.Redis, repo: str, fire_time: str) -> bool:
    """True once per (repository, fire time): only that caller queues the retrain."""
    return bool(conn.set(key("retrain-fire", repo.lower(), fire_time), 1, nx=True, ex=FIRE_TTL))
