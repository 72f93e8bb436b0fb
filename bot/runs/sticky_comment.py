"""The one sticky comment per PR: found by its stored id, else by its marker, else created."""

from __future__ import annotations

import logging
from typing import Any

import redis

from bot.core.report import MARKER
from bot.errors import GitHubNotFound
from bot.github.github_client import GitHubClient
from bot.state.redis_conn import key

log = logging.getLogger(__name__)

# Long enough for a list of every comment page and one write; a crashed holder frees it.
LOCK_SECONDS = 60
# A PR's comment id outlives the PR's activity by far; a month of quiet forgets it.
ID_TTL = 30 * 24 * 3600


def _is_ours(comment: dict[str, Any]) -> bool:
    user = comment.get("user") or {}
    return user.get("type") == "Bot" and str(comment.get("body", "")).startswith(MARKER)


def upsert(gh: GitHubClient, conn: redis.Redis, repo: str, number: int, body: str) -> int:
    """Edit the PR's sticky comment in place, creating it only if it does not exist yet.

    A per-PR lock keeps two concurrent runs from both creating one.
    """
    id_key = key("pr", repo, number, "comment")
    lock = conn.lock(key("pr", repo, number, "comment-lock"), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_SECONDS):
        raise TimeoutError(f"{repo}#{number}: another run held the comment lock too long")
    try:
        stored = conn.get(id_key)
        if stored is not None:
            try:
                gh.update_comment(repo, int(stored), body)
                return int(stored)
            except GitHubNotFound:
                log.info("sticky comment was deleted; looking again", extra={"repo": repo})
        comment_id = next(
            (int(c["id"]) for c in gh.list_comments(repo, number) if _is_ours(c)), None
        )
        if comment_id is not None:
            gh.update_comment(repo, comment_id, body)
        else:
            comment_id = int(gh.create_comment(repo, number, body)["id"])
        conn.set(id_key, comment_id, ex=ID_TTL)
        return comment_id
    finally:
        if lock.owned():
            lock.release()
