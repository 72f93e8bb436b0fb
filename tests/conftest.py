"""Shared fixtures: real Redis (REDIS_URL or embedded), emptied around every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis
from bot.redis_conn import connect

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = connect(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()
