"""What a handler gets: settings and Redis, and GitHub clients built from them on demand."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bot.settings import Settings


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
