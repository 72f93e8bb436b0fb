"""Jobs a worker's stop or death interrupted: shown neutral, their PR lock freed, queued again.

Two paths lead here: a worker given SIGTERM whose running job outlived MLGATE_SHUTDOWN_GRACE
(`workers.worker`), and the scheduler's sweep, which finds started jobs whose work horse
stopped beating (`bot/state/running_jobs.py`): a worker killed, a machine lost.
"""

from __future__ import annotations

import logging
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
from bot.state.run_locks import release_if_held_by
from bot.state.running_jobs import StartedJob

log = logging.getLogger(__name__)

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
    """Queue an interrupted job again; for an evaluation, first show its check neutral and
    free its PR's lock. False when it is gone, no longer started, or taken back already.

    The check and the lock come before the queue: once queued, another worker may run the
    evaluation at once, and a neutral check written after its result would replace it.
    """
    try:
        job = Job.fetch(entry.job_id, connection=conn)
    except NoSuchJobError:
        return False
    if job.func_name == EVALUATE_PULL_REQUEST:
        _release_evaluation(conn, job, settings)
    taken = running_jobs.take_back(conn, entry)
    log.warning(
        "job interrupted by a worker restart: %s",
        "queued again" if taken else "already taken back",
        extra={"job_id": job.id, "queue": entry.queue, "kind": job.func_name},
    )
    return taken


def _release_evaluation(conn: redis.Redis, job: Job, settings: Settings | None) -> None:
    pr = PullRequest(**job.kwargs["pr"])
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
    # The run holds its PR's lock under its job id (workers.jobs.evaluate_pull_request).
    release_if_held_by(conn, pr.repo, pr.number, job.id)


def sweep(
    conn: redis.Redis,
    settings: Settings | None = None,
    *,
    confirm_after: float = 2 * running_jobs.HEARTBEAT_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Take back every started job whose horse stopped beating; returns their job ids.

    A job silent once is looked at again `confirm_after` seconds later, so that a beat lost
    to a Redis restart never queues a job that still runs.
    """
    suspects = running_jobs.silent(conn, QUEUES)
    if not suspects:
        return []
    sleep(confirm_after)
    confirmed = set(running_jobs.silent(conn, QUEUES)) & set(suspects)
    return [
        entry.job_id
        for entry in sorted(confirmed, key=lambda e: e.job_id)
        if take_back(conn, entry, settings)
    ]
