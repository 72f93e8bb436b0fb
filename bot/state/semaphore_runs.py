"""Semaphore runs mlgate started: the run records, their indexes, publication claims and polls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bot.state.redis_conn import key, text

# A run waits for its pipeline at most as long as mlgate keeps any PR state (pr_heads.py).
RUN_TTL = 90 * 24 * 3600


@dataclass(frozen=True)
class SemaphoreRun:
    """A workflow mlgate started for a PR head: what to publish, and where, when it is done.

    `pull` is the PullRequest as a dict (its fields), so that the run survives in Redis as
    JSON; `kind` is "evaluate" or "retrain", or "retrain-loop" for a retrain of the default
    branch, which has no PR (`number` 0) and keeps its request, as plain fields, in `retrain`.
    """

    run_id: str
    kind: str
    repo: str
    number: int
    head_sha: str
    base_sha: str
    workflow_id: str
    pipeline_id: str
    installation_id: int | None
    started_at: float
    pull: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    requested_by: str = ""
    comment_id: int | None = None
    note: str = ""
    workflow_url: str | None = None
    retrain: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # Unsorted: parameters keep the order the report shows them in.
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> SemaphoreRun:
        return cls(**json.loads(raw))


def _run_key(run_id: str) -> str:
    return key("semaphore", "run", run_id)


def _pipeline_key(pipeline_id: str) -> str:
    return key("semaphore", "pipeline", pipeline_id)


def _workflow_key(workflow_id: str) -> str:
    return key("semaphore", "workflow", workflow_id)


def _done_key(pipeline_id: str) -> str:
    return key("semaphore", "done", pipeline_id)


def _active_key() -> str:
    """Runs by start time, for the poll that publishes or expires them (semaphore_poll.py)."""
    return key("semaphore", "active")


def _polled_key(run_id: str) -> str:
    return key("semaphore", "polled", run_id)


def record_run(conn: redis.Redis, run: SemaphoreRun) -> None:
    """Store the run and index it by pipeline id and workflow id, in one transaction."""
    with conn.pipeline(transaction=True) as pipe:
        pipe.set(_run_key(run.run_id), run.to_json(), ex=RUN_TTL)
        pipe.set(_pipeline_key(run.pipeline_id), run.run_id, ex=RUN_TTL)
        pipe.set(_workflow_key(run.workflow_id), run.run_id, ex=RUN_TTL)
        pipe.zadd(_active_key(), {run.run_id: run.started_at})
        pipe.execute()


def load_run(conn: redis.Redis, run_id: str) -> SemaphoreRun | None:
    raw = conn.get(_run_key(run_id))
    return SemaphoreRun.from_json(raw) if isinstance(raw, bytes | str) else None


def find_run(
    conn: redis.Redis, pipeline_id: str, workflow_id: str
) -> tuple[SemaphoreRun | None, bool]:
    """The run whose pipeline this is, and whether the workflow is one mlgate started.

    A promotion (or a partial rerun) adds a pipeline to the workflow with its own id and
    notification: it is known by its workflow, but it is not the run's pipeline.
    """
    run_id = conn.get(_pipeline_key(pipeline_id))
    if run_id is not None:
        return load_run(conn, text(run_id)), True
    return None, conn.exists(_workflow_key(workflow_id)) > 0


def claim(conn: redis.Redis, pipeline_id: str) -> bool:
    """True for the first notification of a pipeline: two deliveries never publish twice."""
    return bool(conn.set(_done_key(pipeline_id), "1", nx=True, ex=RUN_TTL))


def release(conn: redis.Redis, pipeline_id: str) -> None:
    """Give the claim back when publishing failed, so that a retried job publishes."""
    conn.delete(_done_key(pipeline_id))


def is_claimed(conn: redis.Redis, pipeline_id: str) -> bool:
    """Whether the pipeline was published (or expired) already."""
    return bool(conn.exists(_done_key(pipeline_id)))


def active_runs(conn: redis.Redis) -> list[str]:
    """The ids of runs still waiting for their pipeline, oldest first."""
    members: list[bytes] = conn.zrange(_active_key(), 0, -1)  # type: ignore[assignment]
    return [text(raw) for raw in members]


def stop_waiting(conn: redis.Redis, run_id: str) -> None:
    """The run was published or expired: the poll asks about it no more."""
    conn.zrem(_active_key(), run_id)


def last_polled(conn: redis.Redis, run_id: str) -> float | None:
    last = conn.get(_polled_key(run_id))
    return float(text(last)) if last else None


def mark_polled(conn: redis.Redis, run_id: str, now: float, ttl: int) -> None:
    conn.set(_polled_key(run_id), str(now), ex=ttl)
