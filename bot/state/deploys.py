"""Deploy state: gates, refused approvals, pipelines, waiting deploys, claims and promotions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from bot.state.pr_heads import PR_STATE_TTL
from bot.state.redis_conn import key, text

# Refused approvals kept per sha: the newest, enough to see who tried; the rest are counted.
REFUSALS_KEPT = 10


@dataclass(frozen=True)
class CommitPipeline:
    """A Semaphore pipeline that ran for a commit: the one a promotion extends."""

    pipeline_id: str
    workflow_id: str
    passed: bool


def _gate_key(repo: str, sha: str) -> str:
    return key("deploy", "gate", repo, sha)


def _refusals_key(repo: str, sha: str) -> str:
    return key("deploy", "refusals", repo, sha)


def _refusal_count_key(repo: str, sha: str) -> str:
    return key("deploy", "refusal-count", repo, sha)


def _pipeline_key(repo: str, sha: str) -> str:
    return key("deploy", "pipeline", repo.lower(), sha)  # Semaphore keeps its own case


def _pending_key(repo: str, sha: str) -> str:
    return key("deploy", "pending", repo.lower(), sha)


def _claim_key(token: str) -> str:
    return key("deploy", "claim", token)


def _promotion_key(workflow_id: str) -> str:
    return key("deploy", "promotion", workflow_id)


def record_gate(conn: redis.Redis, repo: str, sha: str, passed: bool) -> None:
    """Whether `mlgate/quality` ended in success (overrides included) for this sha."""
    conn.set(_gate_key(repo, sha), "1" if passed else "0", ex=PR_STATE_TTL)


def gate_recorded_passed(conn: redis.Redis, repo: str, sha: str) -> bool:
    return text(conn.get(_gate_key(repo, sha)) or b"") == "1"


def refusals(conn: redis.Redis, repo: str, sha: str) -> tuple[list[str], int]:
    """The newest refused approvals of deploying `sha` (at most REFUSALS_KEPT, oldest first,
    as `@user: why`), and how many there were in all."""
    with conn.pipeline() as pipe:
        pipe.lrange(_refusals_key(repo, sha), 0, -1)
        pipe.get(_refusal_count_key(repo, sha))
        kept, count = pipe.execute()
    lines = [text(r) for r in kept]
    return lines, max(int(count) if count is not None else 0, len(lines))


def add_refusal(conn: redis.Redis, repo: str, sha: str, line: str) -> None:
    """Keep `line` among the newest refusals; anyone may press the button, so the list, and
    the check summary that shows it, must not grow with every press."""
    with conn.pipeline() as pipe:
        pipe.rpush(_refusals_key(repo, sha), line)
        pipe.ltrim(_refusals_key(repo, sha), -REFUSALS_KEPT, -1)
        pipe.expire(_refusals_key(repo, sha), PR_STATE_TTL)
        pipe.incr(_refusal_count_key(repo, sha))
        pipe.expire(_refusal_count_key(repo, sha), PR_STATE_TTL)
        pipe.execute()


def record_pipeline(conn: redis.Redis, repo: str, commit: str, found: CommitPipeline) -> None:
    conn.set(_pipeline_key(repo, commit), json.dumps(asdict(found)), ex=PR_STATE_TTL)


def pipeline_for(conn: redis.Redis, repo: str, sha: str) -> CommitPipeline | None:
    raw = conn.get(_pipeline_key(repo, sha))
    return CommitPipeline(**json.loads(raw)) if raw is not None else None


def save_pending(conn: redis.Redis, repo: str, sha: str, request: Mapping[str, Any]) -> None:
    """A deploy waiting for the pipeline of `sha` (its request's fields)."""
    conn.set(_pending_key(repo, sha), json.dumps(dict(request)), ex=PR_STATE_TTL)


def take_pending(conn: redis.Redis, repo: str, sha: str) -> dict[str, Any] | None:
    """The deploy waiting for the pipeline of `sha`, taken (a second notification finds none)."""
    raw = conn.getdel(_pending_key(repo, sha))
    return dict(json.loads(raw)) if raw is not None else None


def claim_deploy(conn: redis.Redis, token: str) -> bool:
    """True for the first start of a deploy with this request token."""
    return bool(conn.set(_claim_key(token), "1", nx=True, ex=PR_STATE_TTL))


def release_deploy(conn: redis.Redis, token: str) -> None:
    conn.delete(_claim_key(token))


def record_promotion(conn: redis.Redis, workflow_id: str, record: Mapping[str, Any]) -> None:
    """The GitHub Deployment a promotion of this workflow ends, and where it came from."""
    conn.set(_promotion_key(workflow_id), json.dumps(dict(record)), ex=PR_STATE_TTL)


def promotion(conn: redis.Redis, workflow_id: str) -> dict[str, Any] | None:
    raw = conn.get(_promotion_key(workflow_id))
    return dict(json.loads(raw)) if raw is not None else None
