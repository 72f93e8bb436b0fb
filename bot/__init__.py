"""mlgate: CI/CD for machine-learning repositories, as a GitHub App."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Flask, Redis and rq take ~0.4 s to import; CLI commands such as `mlgate report` and
    # `mlgate config validate` need none of them, so `bot.create_app` is imported on first use.
    if name == "create_app":
        from bot.web.app import create_app

        return create_app
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
