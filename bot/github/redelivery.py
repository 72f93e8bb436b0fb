"""No event lost: find GitHub deliveries that never succeeded and ask GitHub to send them again.

GitHub does not redeliver failed deliveries by itself ("Handling failed webhook deliveries"),
and only deliveries from the past 3 days can be redelivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bot.errors import GitHubError
from bot.github.github_client import GitHubClient
from bot.state import redelivery_attempts

log = logging.getLogger(__name__)

REDELIVERY_WINDOW = timedelta(days=3)  # GitHub refuses to redeliver older deliveries
MAX_ATTEMPTS = 5  # per delivery guid, so a permanently broken delivery is not sent forever
# Deliveries GitHub lists per sweep; at 100 a page that is 50 requests at most.
MAX_SCANNED = 5000


def _succeeded(delivery: Mapping[str, Any]) -> bool:
    code = delivery.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


def _delivered_at(delivery: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(delivery["delivered_at"]).replace("Z", "+00:00"))


def plan(
    deliveries: Iterable[Mapping[str, Any]], now: datetime, attempts: Mapping[str, int]
) -> list[int]:
    """Ids of the newest attempt of each guid that never succeeded, within GitHub's window.

    `attempts` counts earlier redeliveries per guid; a guid at MAX_ATTEMPTS is left alone.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    succeeded: set[str] = set()
    for delivery in deliveries:
        guid = str(delivery["guid"])
        if _succeeded(delivery):
            succeeded.add(guid)
        elif now - _delivered_at(delivery) < REDELIVERY_WINDOW:
            if guid not in newest or int(delivery["id"]) > int(newest[guid]["id"]):
                newest[guid] = delivery
    return sorted(
        int(d["id"])
        for guid, d in newest.items()
        if guid not in succeeded and attempts.get(guid, 0) < MAX_ATTEMPTS
    )


def sweep(app_client: GitHubClient, conn: redis.Redis, now: datetime | None = None) -> list[int]:
    """One pass: list recent deliveries, redeliver the failed ones; returns their ids."""
    now = now or datetime.now(UTC)
    recent = []
    for delivery in app_client.list_hook_deliveries(max_items=MAX_SCANNED):
        # Newest first: past the window nothing more can be redelivered.
        if now - _delivered_at(delivery) >= REDELIVERY_WINDOW:
            break
        recent.append(delivery)
    attempts = redelivery_attempts.counts(conn, (str(d["guid"]) for d in recent))
    chosen = plan(recent, now, attempts)
    by_id = {int(d["id"]): str(d["guid"]) for d in recent}
    redelivered = []
    for delivery_id in chosen:
        guid = by_id[delivery_id]
        try:
            app_client.redeliver(delivery_id)
        except GitHubError as exc:
            log.warning("redelivery refused: %s", exc, extra={"delivery_id": guid})
            continue
        redelivery_attempts.count(conn, guid, int(REDELIVERY_WINDOW.total_seconds()))
        redelivered.append(delivery_id)
        log.info("redelivered", extra={"delivery_id": guid, "github_delivery": delivery_id})
    return redelivered
