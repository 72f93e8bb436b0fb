"""`mlgate worker`: one rq worker on `events`, N on `runs`, so a long run never delays a reply."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus

from bot import logs, telemetry
from bot.settings import DEFAULT_SHUTDOWN_GRACE
from bot.state import running_jobs
from bot.state.queues import EVENTS, RUNS
from bot.state.redis_conn import connect
from bot.state.running_jobs import StartedJob

# Imported here, before rq forks a work horse per job, so that no job pays for the import
# (about 0.3 s each: bench/evaluation_flow).
from workers import interruptions, jobs  # noqa: F401

log = logging.getLogger(__name__)

# A worker process that ended is started again after this long, doubling up to the maximum
# while it keeps ending within RESTART_RESET seconds of its start (Redis still away).
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
RESTART_RESET = 60.0

# mlgate_jobs_total{status}: how a job's run ended, as the worker that ran it saw it.
FINISHED, FAILED, RETRIED, STOPPED, INTERRUPTED = (
    "finished",
    "failed",
    "retried",
    "stopped",
    "interrupted",
)
_ENDED = {
    JobStatus.FINISHED: FINISHED,
    JobStatus.FAILED: FAILED,
    JobStatus.STOPPED: STOPPED,
    JobStatus.CANCELED: STOPPED,
}


class MlgateWorker(Worker):
    """rq's forking worker, plus: a shutdown grace, a heartbeat per running job, Prometheus
    figures per job, and interrupted jobs queued again instead of failed.

    On SIGTERM (rq's warm shutdown) it takes no new job and lets the running one go on for
    `shutdown_grace` seconds; then it kills the work horse and every process it started, and
    `workers.interruptions.take_back` queues the job again. A second SIGTERM does the same
    at once.
    """

    def __init__(self, *args: Any, shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shutdown_grace = shutdown_grace
        self._running: Job | None = None
        self._interrupted: str | None = None
        self._grace_timer: threading.Timer | None = None

    # -- the worker (the parent process, one pid for its whole life) --------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._running, self._interrupted = job, None
        started = time.monotonic()
        try:
            super().execute_job(job, queue)
        except BaseException:
            # The worker lost its job (Redis went away while it watched the horse): the job
            # stays started until the scheduler's sweep takes it back, as after a crash.
            self._interrupted = job.id
            raise
        finally:
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            self._running = None
            self._record(job, time.monotonic() - started)

    def handle_warm_shutdown_request(self) -> None:
        job = self._running
        if job is None or not self.horse_pid:
            log.info("worker stops: no job running")
            return
        log.warning(
            "worker stops: the running job gets %g s to finish",
            self.shutdown_grace,
            extra={"job_id": job.id, "grace_s": self.shutdown_grace},
        )
        if self.shutdown_grace <= 0:
            self._interrupt(job.id)
            return
        self._grace_timer = threading.Timer(self.shutdown_grace, self._interrupt, (job.id,))
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A second SIGTERM or SIGINT: the running job is interrupted now, and still queued
        again (rq's cold shutdown would leave it started until the scheduler's sweep)."""
        job = self._running
        if job is None or not self.horse_pid:
            super().request_force_stop(signum, frame)
            return
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._interrupt(job.id)

    def _interrupt(self, job_id: str) -> None:
        """Kill the horse running `job_id` and everything it started (an evaluation runs in
        a session of its own, which the horse's process group does not reach)."""
        job = self._running
        horse = self.horse_pid
        if job is None or job.id != job_id or not horse:
            return
        self._interrupted = job_id
        started = _descendants(horse)
        log.warning("shutdown grace over: stopping the running job", extra={"job_id": job_id})
        self.kill_horse()
        own_group = os.getpgrp()
        for pid in started:
            try:
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # gone already

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        if self._interrupted is not None and job.id == self._interrupted and not self.is_horse:
            if execution is not None:
                entry = StartedJob(job.origin, job.id, execution.id, self.name)
                interruptions.take_back(self.connection, entry)
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def _record(self, job: Job, elapsed: float) -> None:
        """mlgate_jobs_total and mlgate_job_seconds of one job; never fails the worker."""
        status, seconds = INTERRUPTED, elapsed
        if self._interrupted != job.id:
            try:
                job.refresh()  # type: ignore[no-untyped-call]  # untyped in rq
                state = job.get_status(refresh=False)
                # Anything but an end (queued, scheduled, started elsewhere) is a retry.
                status = _ENDED.get(state, RETRIED) if state is not None else FINISHED
                if job.started_at is not None and job.ended_at is not None:
                    seconds = (job.ended_at - job.started_at).total_seconds()
            except Exception:  # the job expired, or Redis is away: the worker's own view
                status = FINISHED if job.get_status(refresh=False) == JobStatus.FINISHED else FAILED
        kind = (job.func_name or "unknown").rsplit(".", 1)[-1]
        figures = telemetry.metrics()
        figures.jobs.labels(queue=job.origin, kind=kind, status=status).inc()
        figures.job_seconds.labels(kind=kind).observe(max(seconds, 0.0))

    # -- the work horse (forked per job) ------------------------------------------------------

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        telemetry.mark_horse()
        super().main_work_horse(job, queue)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """The job, with a heartbeat under its id while it runs (bot/state/running_jobs.py)."""
        # The job's started entry, which its PR lock names (bot/state/running_jobs.py).
        os.environ[running_jobs.EXECUTION_ENV] = execution.id
        done = threading.Event()
        _beat(self.connection, job.id, self.name)  # before rq marks the job started
        beater = threading.Thread(
            target=_keep_beating, args=(self.connection, job.id, self.name, done), daemon=True
        )
        beater.start()
        try:
            return bool(super().perform_job(job, queue, execution))
        finally:
            done.set()
            beater.join(timeout=running_jobs.HEARTBEAT_INTERVAL * 2)
            try:
                running_jobs.stop_beating(self.connection, job.id, self.name)
            except redis.RedisError as exc:
                log.warning("could not stop the job's heartbeat: %s", exc, extra={"job_id": job.id})


def _beat(conn: redis.Redis, job_id: str, horse: str) -> None:
    try:
        running_jobs.beat(conn, job_id, horse)
    except redis.RedisError as exc:
        # Redis away (restarting): the next beat comes within HEARTBEAT_INTERVAL.
        log.warning("job heartbeat failed: %s", exc, extra={"job_id": job_id})


def _keep_beating(conn: redis.Redis, job_id: str, horse: str, done: threading.Event) -> None:
    while not done.wait(running_jobs.HEARTBEAT_INTERVAL):
        _beat(conn, job_id, horse)


def _descendants(pid: int) -> list[int]:
    """Every living descendant of `pid` (Linux /proc), children first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def work(
    redis_url: str, queue_name: str, burst: bool, shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
) -> None:
    """One rq worker on one queue; each job runs in a forked work horse, so a crash is contained."""
    made: list[MlgateWorker] = []
    stopped: list[int] = []

    def stop_before_work(signum: int, _frame: FrameType | None) -> None:
        # Until rq's own handlers are in place: stop before the first job.
        stopped.append(signum)
        for early in made:
            early._stop_requested = True

    signal.signal(signal.SIGTERM, stop_before_work)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # held back by `run`
    logs.configure()
    # Workers block on BLPOP: no socket timeout, unlike the web's fast-failing client.
    conn = connect(redis_url, socket_timeout=None)
    worker = MlgateWorker(
        [Queue(queue_name, connection=conn)], connection=conn, shutdown_grace=shutdown_grace
    )
    made.append(worker)
    if stopped:
        return
    # with_scheduler: the worker also enqueues jobs whose retry delay has passed.
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def run(
    redis_url: str,
    *,
    burst: bool = False,
    runs: int = 1,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
) -> int:
    """Start the worker processes and wait for them; the exit code is non-zero if any failed.

    Until told to stop, a worker process that ends is started again (after RESTART_DELAY,
    doubling while it keeps ending quickly): rq quits on a Redis error outside a job's wait,
    such as a Redis restart, and a machine must not go on with fewer workers than it says.
    """
    if runs < 1:
        raise ValueError("--runs must be at least 1")
    specs = [EVENTS] + [RUNS] * runs

    def spawn(slot: int) -> multiprocessing.Process:
        process = multiprocessing.Process(
            target=work,
            args=(redis_url, specs[slot], burst, shutdown_grace),
            name=f"worker-{specs[slot]}-{slot}",
            daemon=False,
        )
        # The child starts with SIGTERM held back until `work` has a handler of its own: the
        # `stop` below, inherited through the fork, must never run in a worker process.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        return process

    processes = [spawn(slot) for slot in range(len(specs))]
    started = [time.monotonic()] * len(specs)
    delays = [RESTART_DELAY] * len(specs)
    log.info("started %d worker processes", len(processes), extra={"queues": specs})
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        # rq's warm shutdown: no new job; the running one gets the shutdown grace.
        stopping.set()
        for process in processes:
            if process.is_alive():
                process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while any(p.is_alive() for p in processes) or not (burst or stopping.is_set()):
            multiprocessing.connection.wait([p.sentinel for p in processes], timeout=1.0)
            for slot, process in enumerate(processes):
                if process.is_alive() or burst or stopping.is_set():
                    continue
                if time.monotonic() - started[slot] >= RESTART_RESET:
                    delays[slot] = RESTART_DELAY
                log.warning(
                    "worker process ended: starting it again in %g s",
                    delays[slot],
                    extra={"queue": specs[slot], "exitcode": process.exitcode},
                )
                if stopping.wait(delays[slot]):
                    break
                delays[slot] = min(delays[slot] * 2, RESTART_DELAY_MAX)
                processes[slot], started[slot] = spawn(slot), time.monotonic()
                if stopping.is_set():
                    # SIGTERM came while `spawn` held it back: `stop` saw the ended process.
                    processes[slot].terminate()
    finally:
        signal.signal(signal.SIGTERM, previous)
    for process in processes:
        process.join()
    return 1 if any(p.exitcode for p in processes) else 0
