"""Per-installation pacing of GitHub requests, shared in Redis: a token bucket and pauses."""

from __future__ import annotations

import math

import redis

from bot.state.redis_conn import key

# GitHub's secondary rate limits ask integrations to make mutating requests "at least one
# second between each request" (docs.github.com, "Best practices for using the REST API");
# mlgate allows a burst of 10 first (docs/operating.md, How the GitHub client treats GitHub).
DEFAULT_CAPACITY = 10
DEFAULT_RATE = 1.0  # tokens per second

# A GCRA token bucket: the key holds the theoretical arrival time (TAT, microseconds of
# Redis' clock) of the next token. Every call reserves one token, even when it has to wait,
# so that concurrent callers queue up in order instead of all retrying at once. Redis' own
# clock is used so that processes on different machines agree on "now".
_RESERVE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + interval
local wait = tat - now - capacity * interval
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return math.ceil(wait)
"""

# Extend a pause, never shorten it: two answers with different retry-after values must
# leave the longer one in force.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 0
"""


class TokenBucket:
    """A token bucket per scope (installation id, or "app"), shared by every process."""

    def __init__(
        self,
        redis_conn: redis.Redis,
        *,
        capacity: int = DEFAULT_CAPACITY,
        rate: float = DEFAULT_RATE,
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError(f"capacity must be >= 1 and rate > 0, not {capacity} and {rate}")
        self.capacity = capacity
        self.rate = rate
        self._redis = redis_conn
        self._script = redis_conn.register_script(_RESERVE)

    def reserve(self, scope: int | str) -> float:
        """Take one token from `scope`'s bucket; return the seconds to wait before using it."""
        interval_us = math.ceil(1_000_000 / self.rate)
        wait_us = self._script(keys=[key("pace", scope)], args=[self.capacity, interval_us])
        return int(wait_us) / 1_000_000


def pause(redis_conn: redis.Redis, scope: int | str, seconds: float) -> None:
    """Pause every request of `scope` for `seconds` (or longer, if already paused longer)."""
    ms = math.ceil(seconds * 1000)
    if ms > 0:
        redis_conn.eval(_PAUSE, 1, key("pause", scope), ms)


def pause_remaining(redis_conn: redis.Redis, scope: int | str) -> float:
    """Seconds left of the pause of `scope`; 0.0 when it is not paused."""
    ms = int(redis_conn.pttl(key("pause", scope)))
    return ms / 1000 if ms > 0 else 0.0
