"""The retrain line of each repository: its branch and open PR, its lock, and retrain claims."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import redis
from redis.lock import Lock

from bot.state.redis_conn import key, text

# A line outlives any retrain PR worth keeping open; GitHub's open PRs stand in beyond it.
LINE_TTL = 90 * 24 * 3600
# A duplicate delivery comes within GitHub's redelivery window (3 days); a week covers it.
CLAIM_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class RetrainLine:
    """What mlgate last committed for a repository's retrains, and the PR that shows it.

    `files` maps each committed path to its blob sha (None: the retrain deleted it), so that
    the push merging this very commit into the default branch is known for what it is.
    """

    branch: str
    base_sha: str
    head_sha: str
    tree_sha: str
    number: int | None = None
    files: dict[str, str | None] = field(default_factory=dict)


def _line_key(repo: str) -> str:
    return key("retrain-line", repo.lower())


def line(conn: redis.Redis, repo: str) -> RetrainLine | None:
    """The repository's retrain line as last saved; None if it has none (or it expired)."""
    raw = conn.get(_line_key(repo))
    if raw is None:
        return None
    return RetrainLine(**json.loads(text(raw)))


def save_line(conn: redis.Redis, repo: str, saved: RetrainLine) -> None:
    conn.set(_line_key(repo), json.dumps(asdict(saved)), ex=LINE_TTL)


def forget_line(conn: redis.Redis, repo: str) -> None:
    """Drop the line: its PR was closed or merged, so the next retrain opens a new one."""
    conn.delete(_line_key(repo))


def line_lock(conn: redis.Redis, repo: str, timeout: float) -> Lock:
    """One retrain per repository at a time, waited for: two retrains of one line must never
    both find no PR and both open one."""
    lock: Lock = conn.lock(
        key("retrain-line-lock", repo.lower()), timeout=timeout, blocking_timeout=timeout
    )
    return lock


def _claim_key(repo: str, sha: str, trigger: str, occasion: str) -> str:
    return key("retrain-claim", repo.lower(), sha, trigger, occasion)


def outcome(conn: redis.Redis, repo: str, sha: str, trigger: str, occasion: str = "") -> str | None:
    """How the retrain of (`repo`, `sha`, `trigger`, `occasion`) ended; None if it never did.

    A retried job finds None and runs again; a duplicate of a finished one finds its outcome.
    """
    raw = conn.get(_claim_key(repo, sha, trigger, occasion))
    return text(raw) if raw is not None else None


def finish(
    conn: redis.Redis, repo: str, sha: str, trigger: str, occasion: str, result: str
) -> None:
    """Record that the retrain ended with `result`: the same retrain is not done again."""
    conn.set(_claim_key(repo, sha, trigger, occasion), result, ex=CLAIM_TTL)
