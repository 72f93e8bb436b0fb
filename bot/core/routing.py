"""A small synchronous event router: (event, action) -> handlers, combined from modules."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One GitHub webhook delivery, as a worker sees it."""

    name: str
    payload: dict[str, Any]
    delivery_id: str = ""

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def installation_id(self) -> int | None:
        installation = self.payload.get("installation")
        if isinstance(installation, dict) and isinstance(installation.get("id"), int):
            return int(installation["id"])
        return None

    @property
    def repo(self) -> str | None:
        """`owner/name`: GitHub's `repository.full_name`, Semaphore's `repository.slug`."""
        repository = self.payload.get("repository")
        if isinstance(repository, dict):
            for field_name in ("full_name", "slug"):
                if isinstance(repository.get(field_name), str):
                    return str(repository[field_name])
        return None

    def log_extra(self) -> dict[str, object]:
        return {"delivery_id": self.delivery_id, "event": self.name, "repo": self.repo}


class Handler(Protocol):
    def __call__(self, event: Event, ctx: Any, /) -> None: ...


@dataclass
class Router:
    """Handlers keyed by event name and optional action; `Router(a, b)` combines routers."""

    _routes: dict[tuple[str, str | None], list[Handler]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @classmethod
    def combine(cls, *routers: Router) -> Router:
        combined = cls()
        for router in routers:
            for route, handlers in router._routes.items():
                combined._routes[route].extend(handlers)
        return combined

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: call the handler for `event` (only for `action` when given)."""

        def decorate(handler: Handler) -> Handler:
            self._routes[(event, action)].append(handler)
            return handler

        return decorate

    def handlers_for(self, event: Event) -> list[Handler]:
        handlers = list(self._routes.get((event.name, None), []))
        if event.action is not None:
            handlers += self._routes.get((event.name, event.action), [])
        return handlers

    def dispatch(self, event: Event, ctx: Any) -> int:
        """Run every matching handler in registration order; return how many ran."""
        handlers = self.handlers_for(event)
        if not handlers:
            log.debug("no handler for %s.%s", event.name, event.action, extra=event.log_extra())
        for handler in handlers:
            handler(event, ctx)
        return len(handlers)
