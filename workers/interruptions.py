"""Jobs a worker's stop or death interrupted: shown neutral, their PR lock freed, queued again.

Two paths lead here: a worker given SIGTERM whose running job outlived MLGATE_SHUTDOWN_GRACE
(`workers.worker`), and the scheduler's sweep, which finds started jobs whose work horse
stopped beating (`bot/state/running_jobs.py`): a worker killed, a machine lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from bot.core.pr_facts import PullRequest
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.context import Context
from bot.runs.publication import CheckOutput, Publication
from bot.runs.publisher import Publisher
from bot.settings import Settings
from bot.state import running_jobs
from bot.state.queues import EVALUATE_PULL_REQUEST, QUEUES
from bot.state.redis_conn import connect
from bot.state.run_locks import release_if_held_by
from bot.state.running_jobs import StartedJob

log = logging.getLogger(__name__)

# A claim this old was made by a taker that died before queueing the job again.
STALE_CLAIM = 120.0

INTERRUPTED_TITLE = "Interrupted by a worker restart; queued again"
INTERRUPTED_SUMMARY = (
    "mlgate/quality was interrupted by a worker restart; queued again. The worker running "
    "this evaluation stopped (a restart, a crash or a lost machine) before it finished; the "
    "evaluation starts over on another worker and reports here."
)


def interrupted(pr: PullRequest) -> Publication:
    """What an evaluation run shows when its worker stopped under it."""
    check = CheckOutput(
        QUALITY_CHECK, pr.head_sha, INTERRUPTED_TITLE, INTERRUPTED_SUMMARY, "neutral"
    )
    return Publication(pr.repo, pr.number, "interrupted", checks=(check,))


def take_back(conn: redis.Redis, entry: StartedJob, settings: Settings | None = None) -> bool:
    """Claim an interrupted job and queue it again; for an evaluation, first show its check
    neutral and free its PR's lock. False when it is no longer started or another process
    claimed it first.

    The check and the lock come before the queue: once queued, another worker may run the
    evaluation at once, and a neutral check written after its result would replace it.
    """
    if not running_jobs.claim(conn, entry):
        return False
    return _queue_again(conn, entry, settings)


def _queue_again(conn: redis.Redis, entry: StartedJob, settings: Settings | None) -> bool:
    try:
        job = Job.fetch(entry.job_id, connection=conn)
    except NoSuchJobError:
        job = None
    if job is not None and job.func_name == EVALUATE_PULL_REQUEST:
        _release_evaluation(conn, job, entry, settings)
    queued = running_jobs.requeue(conn, entry)
    log.warning(
        "job interrupted by a worker restart: %s",
        "queued again" if queued else "no longer started",
        extra={"job_id": entry.job_id, "queue": entry.queue},
    )
    return queued


def _release_evaluation(
    conn: redis.Redis, job: Job, entry: StartedJob, settings: Settings | None
) -> None:
    pr = PullRequest(**job.kwargs["pr"])
    # A /retrain matrix candidate never shows on mlgate/quality (that is the head's own):
    # queued again, it runs again and the leaderboard shows its result.
    if job.kwargs.get("candidate") is None:
        _show_interrupted(conn, job, pr, settings)
    # The run holds its PR's lock under its started entry (workers.jobs.evaluate_pull_request);
    # a run that was still waiting for the lock never held it.
    release_if_held_by(conn, pr.repo, pr.number, entry.entry)


def _show_interrupted(
    conn: redis.Redis, job: Job, pr: PullRequest, settings: Settings | None
) -> None:
    try:
        settings = settings or Settings.from_env()
        installation_id = int(job.kwargs["installation_id"])
        gh = Context(settings=settings, redis=conn).github.client(installation_id)
        Publisher(gh, conn).publish(interrupted(pr))
    except Exception as exc:  # the run is queued again whatever GitHub says
        log.warning(
            "could not show the interrupted run's check: %s",
            exc,
            extra={"job_id": job.id, "repo": pr.repo, "pr": pr.number},
        )


def sweep(
    conn: redis.Redis,
    settings: Settings | None = None,
    *,
    confirm_after: float = 2 * running_jobs.HEARTBEAT_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Take back every started job whose horse stopped beating, and finish the claims of
    takers that died; returns the ids of the jobs queued again.

    A job silent once is looked at again `confirm_after` seconds later, so that a beat lost
    to a Redis restart never queues a job that still runs.
    """
    queued = [
        entry.job_id
        for entry in running_jobs.unfinished_claims(conn, STALE_CLAIM)
        if _queue_again(conn, entry, settings)
    ]
    suspects = running_jobs.silent(conn, QUEUES)
    if not suspects:
        return queued
    sleep(confirm_after)
    confirmed = set(running_jobs.silent(conn, QUEUES)) & set(suspects)
    return queued + [
        entry.job_id
        for entry in sorted(confirmed, key=lambda e: e.job_id)
        if take_back(conn, entry, settings)
    ]


def sweep_forever(redis_url: str, interval: float, stop: threading.Event) -> None:
    """`mlgate scheduler`'s sweep, every `interval` seconds, in a thread of its own: a job on
    a queue would wait behind the very backlog a dead worker leaves, or for a worker at all."""
    conn = connect(redis_url, socket_timeout=30)
    while not stop.wait(interval):
        try:
            settings = Settings.from_env()
            taken = sweep(conn, settings)
        except Exception as exc:  # Redis restarting, say: the next sweep tries again
            log.warning("sweep for interrupted jobs failed: %s", exc)
            continue
        if taken:
            log.warning("interrupted jobs queued again", extra={"jobs": taken})
