"""Shared fixtures: real Redis (REDIS_URL or embedded), emptied around every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot import create_app
from bot.embedded_redis import EmbeddedRedis
from bot.emulator import GitHubEmulator
from bot.emulator.semaphore_emulator import SemaphoreEmulator
from bot.loopback import serve
from bot.state.redis_conn import connect
from tests.support import FIXTURES, SECRET, SEMAPHORE_PROJECT, SEMAPHORE_REPO, SEMAPHORE_SECRET, Bot

APP_ID = "1"
# Every variable Settings reads: a test starts from none of the developer's own.
ENV_NAMES = (
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "SEMAPHORE_API_URL",
    "SEMAPHORE_API_TOKEN",
    "SEMAPHORE_WEBHOOK_SECRET",
    "MLGATE_PUBLIC_URL",
    "MLGATE_REPO_ALLOWLIST",
    "MLGATE_DATA_DIR",
    "MLGATE_RETRY_DELAYS",
    "MLGATE_RUNNER_SECRETS",
    "MLGATE_SEMAPHORE_RUN_TIMEOUT",
    "MLGATE_METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
    "MLGATE_SANDBOX",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "MLGATE_SESSION_SECRET",
)


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


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of web and worker processes; workers read it when a job runs."""
    values = {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "MLGATE_RETRY_DELAYS": "0,0",
        "MLGATE_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    """The GitHub emulator, checking request bodies against GitHub's OpenAPI description."""
    openapi = FIXTURES / "github" / "openapi-subset.json"
    with GitHubEmulator(app_id=APP_ID, openapi_path=openapi, root=tmp_path / "github") as emu:
        yield emu


@pytest.fixture
def github_env(
    env: dict[str, str], emulator: GitHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`env` plus the App's identity, pointed at the emulator."""
    values = env | {
        "GITHUB_APP_ID": APP_ID,
        "GITHUB_PRIVATE_KEY": emulator.app_private_key_pem,
        "GITHUB_API_URL": emulator.url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def bot(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> Iterator[Bot]:
    """The whole product against the emulator: web over HTTP, jobs run in-process."""
    with serve(create_app(github_env)) as url:
        yield Bot(emulator, redis_conn, url)


@pytest.fixture
def semaphore(
    github_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SemaphoreEmulator]:
    """The Semaphore emulator, and the web and workers pointed at it: request it before `bot`
    (a module's `pytestmark = pytest.mark.usefixtures("semaphore")` does)."""
    with SemaphoreEmulator() as emu:
        emu.add_project(SEMAPHORE_PROJECT, repository=SEMAPHORE_REPO)
        values = {
            "SEMAPHORE_API_URL": emu.url,
            "SEMAPHORE_API_TOKEN": emu.token,
            "SEMAPHORE_WEBHOOK_SECRET": SEMAPHORE_SECRET,
        }
        github_env.update(values)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        yield emu
