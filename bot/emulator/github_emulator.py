"""GitHubEmulator: the emulated GitHub's state, answered by its routes on a loopback server."""

from __future__ import annotations

from typing import Self

from bot.emulator.github_routes import Api
from bot.emulator.github_state import GitHubState


class GitHubEmulator(GitHubState):
    """A GitHub REST API for the endpoints mlgate calls, served over HTTP on a loopback port."""

    def start(self) -> Self:
        """Serve the routes on 127.0.0.1 on a free port, from a daemon thread."""
        # The routes read and change this object's state; they never import this module.
        if self.app is None:
            self.app = Api(self)
        return super().start()
