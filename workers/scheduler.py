"""`mlgate scheduler`: rq's cron scheduler enqueues mlgate's periodic jobs; a thread sweeps for
interrupted jobs."""

from __future__ import annotations

import threading

from rq.cron import CronScheduler

from bot.state.queues import EVENTS
from bot.state.redis_conn import connect
from workers import interruptions, jobs

# GitHub's own example redelivers every few hours; five minutes keeps delays short while
# listing deliveries stays well within the rate limit.
REDELIVER_INTERVAL = 300
# Each run is asked about at most once a minute (bot/semaphore_poll.py, POLL_INTERVAL).
SEMAPHORE_POLL_INTERVAL = 60
# Cron's resolution is the minute: a tick a minute sees every fire time of retrain.schedule.
RETRAIN_TICK_INTERVAL = 60
# A dead worker's job is found HEARTBEAT_TTL (10 s) after its last beat, at the next sweep:
# well before rq's own abandonment timeout (90 s) would fail it instead.
RECOVER_INTERVAL = 15


def build(redis_url: str) -> CronScheduler:
    scheduler = CronScheduler(connection=connect(redis_url, socket_timeout=None))
    scheduler.register(
        jobs.redeliver_failed_deliveries, queue_name=EVENTS, interval=REDELIVER_INTERVAL
    )
    scheduler.register(
        jobs.poll_semaphore_runs, queue_name=EVENTS, interval=SEMAPHORE_POLL_INTERVAL
    )
    register_retrain_schedules(scheduler)
    return scheduler


def register_retrain_schedules(scheduler: CronScheduler) -> None:
    """The retrain loop's schedule tick (bot/runs/retrain_scheduler.py), on `events`."""
    scheduler.register(
        jobs.tick_retrain_schedules, queue_name=EVENTS, interval=RETRAIN_TICK_INTERVAL
    )


def run(redis_url: str) -> None:
    stop = threading.Event()
    sweeper = threading.Thread(
        target=interruptions.sweep_forever,
        args=(redis_url, RECOVER_INTERVAL, stop),
        name="sweep-interrupted-jobs",
        daemon=True,
    )
    sweeper.start()
    try:
        build(redis_url).start()  # type: ignore[no-untyped-call]  # untyped in rq
    finally:
        stop.set()
