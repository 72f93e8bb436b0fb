"""The one sticky comment per PR: found by its stored id, else by its marker, else created."""

from __future__ import annotations

import logging
from typing import Any

import redis

from bot.core.report import MARKER
from bot.errors import GitHubNotFound
from bot.github.github_client import GitHubClient
from bot.state import comment_ids

log = logging.getLogger(__name__)

# Long enough for a list of every comment page and one write; a crashed holder frees it.
LOCK_SECONDS = 60


def written_by(comment: dict[str, Any], login: str | None) -> bool:
    """Written by the bot user `login` (this App's own). Anyone can write a marker, and any
    App's bot can post one: a marker alone proves nothing."""
    user = comment.get("user") or {}
    return (
        login is not None
        and user.get("type") == "Bot"
        and str(user.get("login", "")).lower() == login.lower()
    )


def _is_ours(comment: dict[str, Any], login: str | None) -> bool:
    """This App's report: editing a look-alike would put our report under its name."""
    return written_by(comment, login) and str(comment.get("body", "")).startswith(MARKER)


def upsert(gh: GitHubClient, conn: redis.Redis, repo: str, number: int, body: str) -> int:
    """Edit the PR's sticky comment in place, creating it only if it does not exist yet.

    A per-PR lock keeps two concurrent runs from both creating one.
    """
    lock = comment_ids.comment_lock(conn, repo, number, LOCK_SECONDS)
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_SECONDS):
        raise TimeoutError(f"{repo}#{number}: another run held the comment lock too long")
    try:
        stored = comment_ids.comment_id(conn, repo, number)
        if stored is not None:
            try:
                gh.update_comment(repo, stored, body)
                return stored
            except GitHubNotFound:
                log.info("sticky comment was deleted; looking again", extra={"repo": repo})
        login = gh.bot_login()
        comment_id = next(
            (int(c["id"]) for c in gh.list_comments(repo, number) if _is_ours(c, login)), None
        )
        if comment_id is not None:
            gh.update_comment(repo, comment_id, body)
        else:
            comment_id = int(gh.create_comment(repo, number, body)["id"])
        comment_ids.remember(conn, repo, number, comment_id)
        return comment_id
    finally:
        if lock.owned():
            lock.release()
