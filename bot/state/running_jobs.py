"""Jobs running now: the heartbeat each work horse keeps, and taking back a job whose horse died.

rq marks a job started and forgets who runs it until its own abandonment timeout (minutes).
A work horse here beats every HEARTBEAT_INTERVAL seconds under the job's id; a started job
without a beat lost its horse (a worker killed, a machine lost). One process claims it
(`claim`, atomic), shows what it must, and queues it again with its id and arguments
(`requeue`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Queue
from rq.executions import Execution, ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key, utcformat

from bot.state.redis_conn import key, text

HEARTBEAT_INTERVAL = 2.0
# Five beats missed: a loaded machine may delay a beat or two, never ten seconds of them.
HEARTBEAT_TTL = 10

# Delete the beat only if it is still this horse's: a retried job may already beat elsewhere.
_STOP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Claiming a silent job: its started entry leaves rq's registry for ours of claims, so that
# a claimer that dies before queueing it again leaves a trace (`unfinished_claims`).
# KEYS: the started registry, the job hash, the claims; ARGV: the entry, the claim, now
_CLAIM = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'started' and status ~= 'queued' then return 0 end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

# Queueing a claimed job again, as rq's requeue does, at the front of its queue.
# KEYS: the claims, the job hash, the execution hash, the job's execution registry, the
# worker's execution index, the queue list, rq:queues, the queue's intermediate list
# ARGV: the claim, the job id, the execution id, enqueued_at, the started entry
_REQUEUE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'started' and status ~= 'queued' then return 0 end
redis.call('LREM', KEYS[8], 0, ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'queued', 'enqueued_at', ARGV[4])
redis.call('HDEL', KEYS[2], 'started_at', 'ended_at', 'worker_name', 'last_heartbeat')
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('SREM', KEYS[5], ARGV[5])
redis.call('SADD', KEYS[7], KEYS[6])
redis.call('LPUSH', KEYS[6], ARGV[2])
return 1
"""

# rq's own name for it (rq.worker.SpawnWorker sets it too): the work horse sets it to the
# execution it runs, so that the job knows the started entry it is.
EXECUTION_ENV = "RQ_EXECUTION_ID"


def current_execution() -> str | None:
    """The rq execution this work horse runs; None outside a work horse of `mlgate worker`."""
    return os.environ.get(EXECUTION_ENV) or None


def _claims_key() -> str:
    return key("job-claims")


_UNFINISHED = (JobStatus.STARTED.value, JobStatus.QUEUED.value)


def heartbeat_key(job_id: str) -> str:
    return key("job-heartbeat", job_id)


def beat(conn: redis.Redis, job_id: str, horse: str) -> None:
    """The horse `horse` (its worker's name) still runs `job_id`."""
    conn.set(heartbeat_key(job_id), horse, ex=HEARTBEAT_TTL)


def stop_beating(conn: redis.Redis, job_id: str, horse: str) -> None:
    """The horse `horse` is done with `job_id` (finished, failed or handed to a retry)."""
    conn.eval(_STOP, 1, heartbeat_key(job_id), horse)


@dataclass(frozen=True)
class StartedJob:
    """One entry of rq's started registry of a queue: a job and the execution running it."""

    queue: str
    job_id: str
    execution_id: str
    worker_name: str = ""

    @property
    def entry(self) -> str:
        """As rq's started registry holds it; also the token of a run's PR lock."""
        return f"{self.job_id}:{self.execution_id}"

    @property
    def claim(self) -> str:
        return f"{self.queue}:{self.entry}"

    @classmethod
    def from_claim(cls, claim: str) -> StartedJob:
        queue, _, entry = claim.partition(":")
        job_id, execution_id = parse_composite_key(entry)
        return cls(queue, job_id, execution_id)


def started(conn: redis.Redis, queue: str) -> list[StartedJob]:
    """The started entries of `queue`, read as they are (rq's own cleanup is not run)."""
    registry = StartedJobRegistry(queue, connection=conn)
    found = []
    entries: list[bytes] = conn.zrange(registry.key, 0, -1)  # type: ignore[assignment]
    for entry in entries:
        job_id, execution_id = parse_composite_key(text(entry))
        found.append(StartedJob(queue, job_id, execution_id))
    return found


def silent(conn: redis.Redis, queues: tuple[str, ...]) -> list[StartedJob]:
    """Started jobs of `queues` whose horse has not beaten within HEARTBEAT_TTL."""
    entries = [entry for queue in queues for entry in started(conn, queue)]
    if not entries:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.exists(heartbeat_key(entry.job_id))
            pipe.hget(Job.key_for(entry.job_id), "status")
        replies = pipe.execute()
    return [
        entry
        for entry, alive, status in zip(entries, replies[::2], replies[1::2], strict=True)
        # Status last: a job that ended between the two reads is no longer started. Still
        # queued: its worker registered it and died (or lost Redis) before its horse began.
        if not alive and status is not None and text(status) in _UNFINISHED
    ]


def execution_worker(conn: redis.Redis, entry: StartedJob) -> StartedJob:
    """`entry` with the name of the worker that started it, if rq still knows."""
    try:
        execution = Execution.fetch(entry.execution_id, entry.job_id, connection=conn)
    except ValueError:
        return entry
    return StartedJob(entry.queue, entry.job_id, entry.execution_id, execution.worker_name)


def claim(conn: redis.Redis, entry: StartedJob, now: float | None = None) -> bool:
    """Take a silent started job out of rq's hands; False when it is no longer started or
    another process claimed it first. `requeue` must follow."""
    keys = (
        StartedJobRegistry(entry.queue, connection=conn).key,
        Job.key_for(entry.job_id),
        _claims_key(),
    )
    argv = (entry.entry, entry.claim, time.time() if now is None else now)
    return bool(conn.eval(_CLAIM, len(keys), *keys, *argv))


def requeue(conn: redis.Redis, entry: StartedJob) -> bool:
    """Queue a claimed job again, at the front of its queue, with its id and arguments;
    False when it is not claimed (any more) or no longer started."""
    entry = execution_worker(conn, entry) if not entry.worker_name else entry
    queue = Queue(entry.queue, connection=conn)
    execution = Execution(entry.execution_id, entry.job_id, conn, worker_name=entry.worker_name)
    keys = (
        _claims_key(),
        Job.key_for(entry.job_id),
        execution.key,
        ExecutionRegistry(entry.job_id, connection=conn).key,
        execution.worker_executions_key,
        queue.key,
        Queue.redis_queues_keys,
        IntermediateQueue(queue.key, connection=conn).key,
    )
    now = utcformat(datetime.now(UTC))
    argv = (entry.claim, entry.job_id, entry.execution_id, now, entry.entry)
    return bool(conn.eval(_REQUEUE, len(keys), *keys, *argv))


def unfinished_claims(
    conn: redis.Redis, older_than: float, now: float | None = None
) -> list[StartedJob]:
    """Claims made more than `older_than` seconds ago and never queued: the claimer died."""
    now = time.time() if now is None else now
    found = conn.zrangebyscore(_claims_key(), 0, now - older_than)
    members: list[bytes] = found  # type: ignore[assignment]
    return [StartedJob.from_claim(text(m)) for m in members]
