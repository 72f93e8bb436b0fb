"""Each PR's current head sha, when each head appeared, and the PR each head sha belongs to."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

# Heads, baselines and decisions are kept long enough for any PR's lifetime.
PR_STATE_TTL = 90 * 24 * 3600


def _head_key(repo: str, number: int) -> str:
    return key("pr", repo, number, "head")


def _sha_key(repo: str, sha: str) -> str:
    return key("sha", repo, sha, "pr")


def _appeared_key(repo: str, number: int) -> str:
    return key("pr", repo, number, "appeared")


def record_head(conn: redis.Redis, repo: str, number: int, sha: str) -> str | None:
    """Make `sha` the PR's current head; return the head it replaced, if any."""
    with conn.pipeline() as pipe:
        pipe.getset(_head_key(repo, number), sha)
        pipe.expire(_head_key(repo, number), PR_STATE_TTL)
        pipe.set(_sha_key(repo, sha), number, ex=PR_STATE_TTL)
        previous, _, _ = pipe.execute()
    old = text(previous) if previous is not None else None
    return old if old != sha else None


def is_current(conn: redis.Redis, repo: str, number: int, sha: str) -> bool:
    """Whether `sha` is still the PR's head; a superseded run must not publish."""
    current = conn.get(_head_key(repo, number))
    return current is None or text(current) == sha


def pr_for_sha(conn: redis.Redis, repo: str, sha: str) -> int | None:
    """The PR whose head was `sha` (check runs on fork PRs carry no pull_requests)."""
    number = conn.get(_sha_key(repo, sha))
    return int(number) if number is not None else None


def record_appearance(conn: redis.Redis, repo: str, number: int, sha: str, at: float) -> None:
    """`sha` appeared on the PR at `at`: the `updated_at` of the event that brought it.

    The event's time replaces a time mlgate noted when it saw the head first (see
    first_seen): it is when the code changed, which a command written since has seen.
    """
    with conn.pipeline() as pipe:
        pipe.hset(_appeared_key(repo, number), sha, repr(at))
        pipe.expire(_appeared_key(repo, number), PR_STATE_TTL)
        pipe.execute()


def first_seen(conn: redis.Redis, repo: str, number: int, sha: str, now: float) -> float:
    """When `sha` appeared on the PR: as recorded, else `now`, which is recorded.

    A head no event told mlgate about (its event is still queued, or was lost) appeared,
    as far as mlgate can tell, when it was first seen.
    """
    with conn.pipeline() as pipe:
        pipe.hsetnx(_appeared_key(repo, number), sha, repr(now))
        pipe.hget(_appeared_key(repo, number), sha)
        pipe.expire(_appeared_key(repo, number), PR_STATE_TTL)
        _, stored, _ = pipe.execute()
    return float(text(stored))
