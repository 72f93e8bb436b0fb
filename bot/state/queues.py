"""Queue names and the enqueue step of the web; jobs are named by path, never imported."""

from __future__ import annotations

import functools
import hashlib
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import DefaultSerializer
from rq.utils import utcformat

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
CHECK_PRODUCTION = "workers.jobs.check_production"
# An evaluation may run a model; its own timeout (evaluate.timeout) kills the command first.
RUN_JOB_TIMEOUT = 6 * 3600
EVENT_JOB_TIMEOUT = 300
# Failed jobs stay in rq's failed registry as long as GitHub lets an operator redeliver.
FAILURE_TTL = deliveries.DELIVERY_TTL


def retry_policy(delays: tuple[int, ...]) -> Retry | None:
    """Retry a failed job once per delay, waiting that many seconds (backoff)."""
    return Retry(max=len(delays), interval=list(delays)) if delays else None


# One round trip accepts a delivery: the claim of its id, its body, and its rq job, written
# as rq itself writes an enqueued job (`_job_fields`). Atomic, so a Redis failure can neither
# lose the event (claimed, never queued) nor double it; a duplicate writes nothing.
# KEYS: delivery state, payload, failed registry, job hash, queue list, rq:queues
# ARGV: queued state, ttl, body, job id, then the job hash's fields and values
_ACCEPT = """
local state = redis.call('GET', KEYS[1])
if state and state ~= 'failed' then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], unpack(ARGV, 5))
redis.call('SADD', KEYS[6], KEYS[5])
redis.call('RPUSH', KEYS[5], ARGV[4])
return 1
"""
_ACCEPT_SHA = hashlib.sha1(_ACCEPT.encode()).hexdigest()


@functools.cache
def _job_template(job: str, source: str, retry_delays: tuple[int, ...]) -> dict[str, Any]:
    """The hash rq writes for an enqueued `job` of `source`, made once by rq itself; only the
    fields that differ per delivery are replaced for each one (`_job_fields`)."""
    made = Job.create(
        job,
        args=(),
        id=f"{source}-template",
        connection=redis.Redis(),  # never used: nothing is saved
        origin=EVENTS,
        timeout=EVENT_JOB_TIMEOUT,
        failure_ttl=FAILURE_TTL,
        retry=retry_policy(retry_delays),
        on_success=Callback("workers.jobs.mark_delivery_done"),
        on_failure=Callback("workers.jobs.mark_delivery_failed"),
    )
    if made.retries_left is None and retry_delays:
        raise AssertionError("rq no longer records retries on Job.create")
    fields = made.to_dict()
    fields["status"] = JobStatus.QUEUED.value
    return fields


def _job_fields(
    job: str, source: str, delivery_id: str, args: tuple[str, ...], retry_delays: tuple[int, ...]
) -> dict[str, Any]:
    """rq's hash of the job that routes one delivery (tested equal to rq's own enqueue)."""
    now = utcformat(datetime.now(UTC))
    return _job_template(job, source, retry_delays) | {
        "created_at": now,
        "enqueued_at": now,
        "data": zlib.compress(DefaultSerializer.dumps((job, None, args, {}))),
        # rq's default description is repr() of every argument, payload included.
        "description": " ".join((source, *args)),
        "meta": DefaultSerializer.dumps({"source": source, "delivery_id": delivery_id}),
    }


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
    """Record a webhook delivery of `source` and enqueue `job(*args)` in one round trip.

    False for a duplicate: a delivery id seen before whose job is queued, running or done.
    Every source (GitHub, Semaphore) goes through here, so de-duplication, storage and the
    done/failed bookkeeping of `workers.jobs.mark_delivery_*` are the same for all.

    The payload is stored as the sender sent it, under its own key, and the job carries only
    the delivery id: rq compresses and pickles job arguments, which cost the web more than
    everything else together on a 25 KB payload (bench/webhook_ack).
    """
    state_key = deliveries.delivery_key(source, delivery_id)
    job_id = f"{source}-{delivery_id}"
    queue = Queue(EVENTS, connection=conn)
    fields = _job_fields(job, source, delivery_id, args, retry_delays)
    keys = (
        state_key,
        deliveries.payload_key(source, delivery_id),
        FailedJobRegistry(EVENTS, connection=conn).key,
        Job.key_for(job_id),
        queue.key,
        Queue.redis_queues_keys,
    )
    argv: list[Any] = [DeliveryState.QUEUED.value, deliveries.DELIVERY_TTL, body, job_id]
    for name, value in fields.items():
        argv += [name, value]
    try:
        try:
            accepted = conn.evalsha(_ACCEPT_SHA, len(keys), *keys, *argv)
        except redis.exceptions.NoScriptError:
            accepted = conn.eval(_ACCEPT, len(keys), *keys, *argv)  # once per Redis start
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The connection dropped around the script: only what Redis holds now tells whether
        # it ran. Recorded is a duplicate (the event is queued); anything else must be
        # redelivered, so it is an error (503), never a 200 that loses the event.
        if deliveries.accepts(conn.get(state_key)):
            raise redis.ConnectionError(
                f"delivery {delivery_id} was not recorded: {type(exc).__name__}"
            ) from exc
        return False
    return bool(accepted)


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


# A run queued, waiting for its retry delay (scheduled) or running: not queued again.
_PENDING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED)


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
    if existing is not None:
        if existing.get_status() in _PENDING:
            return False
        # rq writes a new job over the old hash, which would keep the ended run's count of
        # retries (workers/jobs.py): the new run gets every attempt MLGATE_RETRY_DELAYS allows.
        existing.delete()
    Queue(RUNS, connection=conn).enqueue_call(
        func, kwargs=kwargs, job_id=job_id, timeout=RUN_JOB_TIMEOUT, failure_ttl=FAILURE_TTL
    )
    return True


def cancel_run(conn: redis.Redis, kind: str, repo: str, number: int | None, sha: str) -> bool:
    """Cancel a queued run, or one waiting for its retry (a newer push superseded it); True
    if one was cancelled."""
    job_id = run_job_id(kind, repo, number, sha)
    if not Job.exists(job_id, conn):
        return False
    job = Job.fetch(job_id, connection=conn)
    if job.get_status() not in (JobStatus.QUEUED, JobStatus.SCHEDULED):
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


def enqueue_monitor_check(conn: redis.Redis, repo: str, env: str) -> bool:
    """Judge an environment's uploads on `events`; a check already queued covers a burst."""
    digest = hashlib.sha1(repo.lower().encode()).hexdigest()[:12]
    job_id = f"monitor-{digest}-{env}"
    if Job.exists(job_id, conn):
        status = Job.fetch(job_id, connection=conn).get_status()
        if status == JobStatus.QUEUED:
            return False
        if status == JobStatus.STARTED:
            # The running check may have read the series before this upload: one more.
            job_id = f"{job_id}-{uuid.uuid4().hex[:8]}"
    Queue(EVENTS, connection=conn).enqueue_call(
        CHECK_PRODUCTION,
        args=(repo, env),
        job_id=job_id,
        timeout=EVENT_JOB_TIMEOUT,
        failure_ttl=FAILURE_TTL,
    )
    return True
