"""Metrics recorded per commit: PRs' baselines, and the default branch's trend."""

from __future__ import annotations

import json

import redis

from bot.core.comparison import Metrics
from bot.core.evaluation_result import Baseline
from bot.state.pr_heads import PR_STATE_TTL
from bot.state.redis_conn import key, text

TREND_LENGTH = 20


def _baseline_key(repo: str, sha: str) -> str:
    return key("baseline", repo, sha)


def _trend_key(repo: str) -> str:
    """A sorted set of default-branch commits, scored by when they were pushed."""
    return key("baselines", repo)


def record_baseline(
    conn: redis.Redis, repo: str, sha: str, metrics: Metrics, when: float | None
) -> None:
    """Store a commit's metrics as PRs' base; with `when`, a default-branch commit of the trend."""
    with conn.pipeline() as pipe:
        pipe.set(_baseline_key(repo, sha), json.dumps(metrics, sort_keys=True), ex=PR_STATE_TTL)
        if when is not None:
            pipe.zadd(_trend_key(repo), {sha: when})
            # Keep the sorted set bounded: only the newest commits are ever drawn.
            pipe.zremrangebyrank(_trend_key(repo), 0, -(TREND_LENGTH * 5) - 1)
        pipe.execute()


def baseline(conn: redis.Redis, repo: str, sha: str) -> Metrics | None:
    raw = conn.get(_baseline_key(repo, sha))
    return json.loads(raw) if raw is not None else None


def trend(conn: redis.Redis, repo: str) -> list[Baseline]:
    """The last 20 default-branch baselines, oldest first."""
    members: list[bytes] = conn.zrange(_trend_key(repo), -TREND_LENGTH, -1)  # type: ignore[assignment]
    shas = [text(s) for s in members]
    raws = conn.mget([_baseline_key(repo, s) for s in shas]) if shas else []
    return [Baseline(sha, json.loads(raw)) for sha, raw in zip(shas, raws, strict=True) if raw]
