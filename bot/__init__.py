"""mlgate: CI/CD for machine-learning repositories, as a GitHub App."""

from __future__ import annotations

from bot.app import create_app

__all__ = ["create_app"]
