"""A local GitHub REST API emulator backed by real git repositories, for tests and `mlgate demo`."""

from __future__ import annotations

from bot.emulator.github_emulator import GitHubEmulator
from bot.emulator.github_models import EmulatedRepo, EmulatorError
from bot.emulator.semaphore_emulator import SemaphoreEmulator as SemaphoreEmulator
from bot.loopback import RecordedRequest

__all__ = ["EmulatedRepo", "EmulatorError", "GitHubEmulator", "RecordedRequest"]
