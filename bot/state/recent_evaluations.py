"""Each repository's evaluations as they were published, newest first, for the dashboard."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from bot.state.redis_conn import key

# The dashboard shows the newest; a few pages of history are enough for any look back.
KEEP = 200
STATE_TTL = 90 * 24 * 3600


@dataclass(frozen=True)
class PublishedEvaluation:
    """One evaluation as published on a PR head: its verdict (passed, failed, overridden,
    no_gates, skipped, error, or neutral for code that was not run) and when."""

    pr: int
    sha: str
    verdict: str
    at: float
    failed_gates: int = 0
    gates: int = 0


def _key(repo: str) -> str:
    return key("evaluations", repo)


def record(conn: redis.Redis, repo: str, published: PublishedEvaluation) -> None:
    """Add `published` in front of the repository's list, which keeps the newest KEEP."""
    with conn.pipeline(transaction=True) as pipe:
        pipe.lpush(_key(repo), json.dumps(asdict(published)))
        pipe.ltrim(_key(repo), 0, KEEP - 1)
        pipe.expire(_key(repo), STATE_TTL)
        pipe.execute()


def recent(conn: redis.Redis, repo: str, count: int = 30) -> list[PublishedEvaluation]:
    """The newest `count` evaluations of `repo`, newest first."""
    raw: list[bytes] = conn.lrange(_key(repo), 0, count - 1)  # type: ignore[assignment]
    found = []
    for item in raw:
        try:
            found.append(PublishedEvaluation(**json.loads(item)))
        except (ValueError, TypeError):
            continue  # written by another version of mlgate: not shown rather than a 500
    return found


def latest(conn: redis.Redis, repos: list[str]) -> dict[str, PublishedEvaluation]:
    """The newest evaluation of each repository that has one, in one round trip."""
    with conn.pipeline(transaction=False) as pipe:
        for repo in repos:
            pipe.lindex(_key(repo), 0)
        answers = pipe.execute()
    found = {}
    for repo, item in zip(repos, answers, strict=True):
        if item is None:
            continue
        try:
            found[repo] = PublishedEvaluation(**json.loads(item))
        except (ValueError, TypeError):
            continue
    return found
