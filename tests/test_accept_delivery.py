"""The web's one-round-trip accept writes the very job rq's own enqueue writes."""

from __future__ import annotations

import pickle
import zlib

import redis
from rq import Callback, Queue
from rq.job import Job

from bot.state import deliveries, queues
from bot.state.deliveries import DeliveryState
from bot.state.queues import EVENTS, HANDLE_GITHUB_EVENT
from tests.support import run_jobs

PER_JOB = {"created_at", "enqueued_at", "data", "description", "meta"}


def rq_enqueue(
    conn: redis.Redis, job_id: str, args: tuple[str, ...], delays: tuple[int, ...]
) -> None:
    """What mlgate did before: rq's enqueue_call with the same options."""
    Queue(EVENTS, connection=conn).enqueue_call(
        HANDLE_GITHUB_EVENT,
        args=args,
        job_id=job_id,
        description=" ".join(("github", *args)),
        timeout=queues.EVENT_JOB_TIMEOUT,
        failure_ttl=queues.FAILURE_TTL,
        retry=queues.retry_policy(delays),
        meta={"source": "github", "delivery_id": args[1]},
        on_success=Callback("workers.jobs.mark_delivery_done"),
        on_failure=Callback("workers.jobs.mark_delivery_failed"),
    )


def job_hash(conn: redis.Redis, job_id: str) -> dict[str, bytes]:
    raw: dict[bytes, bytes] = conn.hgetall(Job.key_for(job_id))  # type: ignore[assignment]
    return {k.decode(): v for k, v in raw.items()}


def test_the_accepted_job_is_the_one_rq_would_have_enqueued(redis_conn: redis.Redis) -> None:
    delays = (10, 60, 300)
    rq_enqueue(redis_conn, "github-by-rq", ("push", "by-rq"), delays)
    assert queues.accept_delivery(
        redis_conn, "github", "ours", b"{}", delays, job=HANDLE_GITHUB_EVENT, args=("push", "ours")
    )
    theirs, ours = job_hash(redis_conn, "github-by-rq"), job_hash(redis_conn, "github-ours")
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k not in PER_JOB} == {
        k: v for k, v in theirs.items() if k not in PER_JOB
    }
    assert pickle.loads(zlib.decompress(ours["data"])) == (
        HANDLE_GITHUB_EVENT,
        None,
        ("push", "ours"),
        {},
    )
    assert pickle.loads(ours["meta"]) == {"source": "github", "delivery_id": "ours"}
    assert ours["description"] == b"github push ours"
    job = Job.fetch("github-ours", connection=redis_conn)
    assert (job.args, job.retries_left, job.retry_intervals) == (("push", "ours"), 3, [10, 60, 300])
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-by-rq", "github-ours"]


def test_a_duplicate_writes_nothing_and_a_failed_delivery_is_queued_again(
    redis_conn: redis.Redis,
) -> None:
    def accept() -> bool:
        return queues.accept_delivery(
            redis_conn, "github", "d", b"{}", (), job=HANDLE_GITHUB_EVENT, args=("push", "d")
        )

    assert accept() is True
    assert accept() is False
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-d"]
    deliveries.mark(redis_conn, "github", "d", DeliveryState.FAILED)
    Queue(EVENTS, connection=redis_conn).empty()  # type: ignore[no-untyped-call]  # untyped in rq
    assert accept() is True
    assert Queue(EVENTS, connection=redis_conn).job_ids == ["github-d"]
    assert deliveries.state(redis_conn, "github", "d") is DeliveryState.QUEUED


def test_the_script_is_loaded_again_after_redis_forgot_it(redis_conn: redis.Redis) -> None:
    redis_conn.script_flush()
    assert queues.accept_delivery(
        redis_conn, "github", "e", b"{}", (), job=HANDLE_GITHUB_EVENT, args=("push", "e")
    )
    assert Queue(EVENTS, connection=redis_conn).count == 1


def test_an_accepted_job_runs_and_marks_its_delivery_done(
    redis_conn: redis.Redis, env: dict[str, str]
) -> None:
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    assert queues.accept_delivery(
        redis_conn, "github", "f", body, (), job=HANDLE_GITHUB_EVENT, args=("ping", "f")
    )
    run_jobs(redis_conn)
    assert deliveries.state(redis_conn, "github", "f") is DeliveryState.DONE
