"""What a handler gets: settings and Redis, and GitHub clients built from them on demand."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from bot.core.routing import Event
from bot.github.github_client import GitHubApp, GitHubClient
from bot.settings import Settings


@dataclass
class Context:
    settings: Settings
    redis: redis.Redis
    _app: GitHubApp | None = field(default=None, repr=False)

    @property
    def github(self) -> GitHubApp:
        """The App, built on first use so that handlers that never call GitHub need no key."""
        if self._app is None:
            self._app = GitHubApp(
                self.settings.github_app_id,
                self.settings.github_private_key,
                self.settings.github_api_url,
                self.redis,
            )
        return self._app

    def client(self, event: Event) -> GitHubClient:
        """A client for the installation that sent `event`."""
        if event.installation_id is None:
            assert event.repo is not None, "an event without installation names a repository"
            return self.github.client(self.github.installation_for_repo(event.repo))
        return self.github.client(event.installation_id)
