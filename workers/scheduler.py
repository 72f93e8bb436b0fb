"""`mlgate scheduler`: rq's cron scheduler enqueues mlgate's periodic jobs."""

from __future__ import annotations

from rq.cron import CronScheduler

from bot.state.queues import EVENTS
from bot.state.redis_conn import connect
from workers import jobs

# GitHub's own example redelivers every few hours; five minutes keeps delays short while
# listing deliveries stays well within the rate limit.
REDELIVER_INTERVAL = 300
# Each run is asked about at most once a minute (bot/semaphore_poll.py, POLL_INTERVAL).
SEMAPHORE_POLL_INTERVAL = 60
# A dead worker's job is found HEARTBEAT_TTL (10 s) after its last beat, at the next sweep:
# well before rq's own abandonment timeout would fail it instead.
RECOVER_INTERVAL = 30


def build(redis_url: str) -> CronScheduler:
    scheduler = CronScheduler(connection=connect(redis_url, socket_timeout=None))
    scheduler.register(
        jobs.redeliver_failed_deliveries, queue_name=EVENTS, interval=REDELIVER_INTERVAL
    )
    scheduler.register(
        jobs.poll_semaphore_runs, queue_name=EVENTS, interval=SEMAPHORE_POLL_INTERVAL
    )
    scheduler.register(jobs.recover_interrupted_jobs, queue_name=EVENTS, interval=RECOVER_INTERVAL)
    return scheduler


def run(redis_url: str) -> None:
    build(redis_url).start()  # type: ignore[no-untyped-call]  # untyped in rq
