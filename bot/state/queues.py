"""Queue names and the enqueue step of the web; jobs are named by path, never imported."""

from __future__ import annotations

import hashlib
from typing import Any

import redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from bot.state import deliveries
from bot.state.deliveries import DeliveryState

EVENTS = "events"  # fast: routing an event, replying to a command
RUNS = "runs"  # slow: evaluations and retrains, so they never delay a reply
QUEUES = (EVENTS, RUNS)

HANDLE_GITHUB_EVENT = "workers.jobs.handle_github_event"
HANDLE_SEMAPHORE_EVENT = "workers.jobs.handle_semaphore_event"
EVALUATE_PULL_REQUEST = "workers.jobs.evaluate_pull_request"
RECORD_BASELINE = "workers.jobs.record_baseline"
DEPLOY_WITH_RUNNER = "workers.jobs.deploy_with_runner"
# An evaluation may run a model; its own timeout (evaluate.timeout) kills the command first.
RUN_JOB_TIMEOUT = 6 * 3600
EVENT_JOB_TIMEOUT = 300
# Failed jobs stay in rq's failed registry as long as GitHub lets an operator redeliver.
FAILURE_TTL = deliveries.DELIVERY_TTL


def retry_policy(delays: tuple[int, ...]) -> Retry | None:
    """Retry a failed job once per delay, waiting that many seconds (backoff)."""
    return Retry(max=len(delays), interval=list(delays)) if delays else None


def accept_delivery(
    conn: redis.Redis,
    source: str,
    delivery_id: str,
    body: bytes,
    retry_delays: tuple[int, ...],
    *,
    job: str,
    args: tuple[str, ...],
) -> bool:
    """Record a webhook delivery of `source` and enqueue `job(*args)` in one transaction.

    False for a duplicate: a delivery id seen before whose job is queued, running or done.
    Every source (GitHub, Semaphore) goes through here, so de-duplication, storage and the
    done/failed bookkeeping of `workers.jobs.mark_delivery_*` are the same for all.

    The payload is stored as the sender sent it, under its own key, and the job carries only
    the delivery id: rq compresses and pickles job arguments, which cost the web more than
    everything else together on a 25 KB payload (bench/webhook_ack).

    Claiming and enqueueing are one MULTI/EXEC, so a Redis failure in between can neither
    lose the event (claimed, never enqueued) nor double it (enqueued twice).
    """
    state_key = deliveries.delivery_key(source, delivery_id)
    job_id = f"{source}-{delivery_id}"
    queue = Queue(EVENTS, connection=conn)
    with conn.pipeline() as pipe:
        try:
            pipe.watch(state_key)  # type: ignore[no-untyped-call]  # untyped in redis-py
            if not deliveries.accepts(pipe.get(state_key)):
                return False
            pipe.multi()
            pipe.set(state_key, DeliveryState.QUEUED.value, ex=deliveries.DELIVERY_TTL)
            pipe.set(deliveries.payload_key(source, delivery_id), body, ex=deliveries.DELIVERY_TTL)
            # A redelivery of a failed job replaces it, so it leaves the failed registry.
            pipe.zrem(FailedJobRegistry(EVENTS, connection=conn).key, job_id)
            queue.enqueue_call(
                job,
                args=args,
                job_id=job_id,
                # rq's default description is repr() of every argument, payload included.
                description=" ".join((source, *args)),
                timeout=EVENT_JOB_TIMEOUT,
                failure_ttl=FAILURE_TTL,
                retry=retry_policy(retry_delays),
                meta={"source": source, "delivery_id": delivery_id},
                on_success=Callback("workers.jobs.mark_delivery_done"),
                on_failure=Callback("workers.jobs.mark_delivery_failed"),
                pipeline=pipe,
            )
            pipe.execute()
        except (redis.WatchError, redis.ConnectionError, redis.TimeoutError) as exc:
            # Another web process claimed the delivery between WATCH and EXEC, or the
            # connection dropped around EXEC (redis-py says WatchError or ConnectionError):
            # only what Redis holds now tells whether the transaction ran. Recorded is a
            # duplicate (the event is queued); anything else must be redelivered, so it is an
            # error (503), never a 200 that loses the event.
            if deliveries.accepts(conn.get(state_key)):
                raise redis.ConnectionError(
                    f"delivery {delivery_id} was not recorded: {type(exc).__name__}"
                ) from exc
            return False
    return True


def accept_github_delivery(
    conn: redis.Redis,
    event: str,
    delivery_id: str,
    body: bytes,
    retry_delays: tuple[int, ...],
) -> bool:
    """Accept a GitHub delivery: its job routes the stored body as `event`."""
    return accept_delivery(
        conn,
        "github",
        delivery_id,
        body,
        retry_delays,
        job=HANDLE_GITHUB_EVENT,
        args=(event, delivery_id),
    )


def run_job_id(kind: str, repo: str, number: int | None, sha: str) -> str:
    """A stable job id per (kind, repo, PR, sha): the same work is never queued twice.

    rq ids allow only [A-Za-z0-9_-], so the repository is hashed.
    """
    digest = hashlib.sha1(repo.lower().encode()).hexdigest()[:12]
    return f"{kind}-{digest}-{number or 0}-{sha}"


def enqueue_run(
    conn: redis.Redis,
    kind: str,
    func: str,
    repo: str,
    number: int | None,
    sha: str,
    /,
    **kwargs: Any,
) -> bool:
    """Queue a slow job on `runs`, unless the same one is already queued or running."""
    job_id = run_job_id(kind, repo, number, sha)
    existing = Job.fetch(job_id, connection=conn) if Job.exists(job_id, conn) else None
    if existing is not None and existing.get_status() in (JobStatus.QUEUED, JobStatus.STARTED):
        return False
    Queue(RUNS, connection=conn).enqueue_call(
        func, kwargs=kwargs, job_id=job_id, timeout=RUN_JOB_TIMEOUT, failure_ttl=FAILURE_TTL
    )
    return True


def cancel_run(conn: redis.Redis, kind: str, repo: str, number: int | None, sha: str) -> bool:
    """Cancel a queued run (a newer push superseded it); True if one was cancelled."""
    job_id = run_job_id(kind, repo, number, sha)
    if not Job.exists(job_id, conn):
        return False
    job = Job.fetch(job_id, connection=conn)
    if job.get_status() != JobStatus.QUEUED:
        return False
    job.cancel()
    return True


def depths(conn: redis.Redis) -> dict[str, int]:
    """How many jobs wait on each queue."""
    with conn.pipeline(transaction=False) as pipe:
        for name in QUEUES:
            pipe.llen(Queue(name, connection=conn).key)
        counts = pipe.execute()
    return dict(zip(QUEUES, (int(c) for c in counts), strict=True))
