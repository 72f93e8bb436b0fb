"""What a web process holds: settings and a Redis client, built once per app by create_app."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from bot.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis


def services() -> Services:
    found = current_app.extensions["mlgate"]
    assert isinstance(found, Services)
    return found
