"""Installation events: remember which repositories the App is installed on."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bot.core.routing import Event, Router
from bot.runs.context import Context
from bot.state import installations

log = logging.getLogger(__name__)
router = Router()


def _names(repositories: Iterable[Any]) -> list[str]:
    return [r["full_name"] for r in repositories if isinstance(r, dict) and "full_name" in r]


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
def installation_created(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    added = _names(event.payload.get("repositories") or [])
    installations.record(ctx.redis, installation_id, added, [])
    log.info("installed on %d repositories", len(added), extra=event.log_extra())


@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
def installation_deleted(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    listed = _names(event.payload.get("repositories") or [])
    removed = installations.forget(ctx.redis, installation_id, listed)
    log.info("uninstalled from %d repositories", removed, extra=event.log_extra())


@router.register("installation_repositories")
def repositories_changed(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    added = _names(event.payload.get("repositories_added") or [])
    removed = _names(event.payload.get("repositories_removed") or [])
    installations.record(ctx.redis, installation_id, added, removed)
    log.info("repositories +%d -%d", len(added), len(removed), extra=event.log_extra())
