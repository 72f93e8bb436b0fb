"""`mlgate worker`: one rq worker on `events`, N on `runs`, so a long run never delays a reply."""

from __future__ import annotations

import logging
import multiprocessing
import signal
from types import FrameType

from rq import Queue, Worker

from bot import logs
from bot.state.queues import EVENTS, RUNS
from bot.state.redis_conn import connect

# Imported here, before rq forks a work horse per job, so that no job pays for the import
# (about 0.3 s each: bench/evaluation_flow).
from workers import jobs  # noqa: F401

log = logging.getLogger(__name__)


def work(redis_url: str, queue_name: str, burst: bool) -> None:
    """One rq worker on one queue; each job runs in a forked work horse, so a crash is contained."""
    logs.configure()
    # Workers block on BLPOP: no socket timeout, unlike the web's fast-failing client.
    conn = connect(redis_url, socket_timeout=None)
    worker = Worker([Queue(queue_name, connection=conn)], connection=conn)
    # with_scheduler: the worker also enqueues jobs whose retry delay has passed.
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def run(redis_url: str, *, burst: bool = False, runs: int = 1) -> int:
    """Start the worker processes and wait for them; the exit code is non-zero if any failed."""
    if runs < 1:
        raise ValueError("--runs must be at least 1")
    specs = [EVENTS] + [RUNS] * runs
    processes = [
        multiprocessing.Process(
            target=work, args=(redis_url, name, burst), name=f"worker-{name}-{i}", daemon=False
        )
        for i, name in enumerate(specs)
    ]
    for process in processes:
        process.start()
    log.info("started %d worker processes", len(processes), extra={"queues": specs})

    def stop(signum: int, _frame: FrameType | None) -> None:
        # rq's warm shutdown: finish the current job, then exit.
        for process in processes:
            if process.is_alive():
                process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for process in processes:
            process.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if any(p.exitcode for p in processes) else 0
