"""Installation events: remember which repositories the App is installed on."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis

from bot.core.routing import Event, Router
from bot.runs.context import Context
from bot.state.redis_conn import key, text

log = logging.getLogger(__name__)
router = Router()

REPOS = key("installed-repos")  # hash: full_name -> installation id


def installed_repositories(conn: redis.Redis) -> dict[str, int]:
    """Every installed repository with its installation id."""
    return {text(k): int(v) for k, v in conn.hgetall(REPOS).items()}


def _names(repositories: Iterable[Any]) -> list[str]:
    return [r["full_name"] for r in repositories if isinstance(r, dict) and "full_name" in r]


def _record(conn: redis.Redis, installation_id: int, added: list[str], removed: list[str]) -> None:
    members = key("installation", installation_id, "repos")
    with conn.pipeline() as pipe:
        for name in added:
            pipe.hset(REPOS, name, installation_id)
            pipe.sadd(members, name)
        for name in removed:
            pipe.hdel(REPOS, name)
            pipe.srem(members, name)
        pipe.execute()


@router.register("installation", action="created")
@router.register("installation", action="unsuspend")
def installation_created(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    added = _names(event.payload.get("repositories") or [])
    _record(ctx.redis, installation_id, added, [])
    log.info("installed on %d repositories", len(added), extra=event.log_extra())


@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
def installation_deleted(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    members = key("installation", installation_id, "repos")
    removed = [text(m) for m in ctx.redis.smembers(members)]
    removed += _names(event.payload.get("repositories") or [])
    _record(ctx.redis, installation_id, [], removed)
    ctx.redis.delete(members)
    log.info("uninstalled from %d repositories", len(set(removed)), extra=event.log_extra())


@router.register("installation_repositories")
def repositories_changed(event: Event, ctx: Context) -> None:
    installation_id = event.payload["installation"]["id"]
    added = _names(event.payload.get("repositories_added") or [])
    removed = _names(event.payload.get("repositories_removed") or [])
    _record(ctx.redis, installation_id, added, removed)
    log.info("repositories +%d -%d", len(added), len(removed), extra=event.log_extra())
