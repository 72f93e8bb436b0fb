"""Shutdown and crashes with real `mlgate worker` processes: a stopped or killed worker's run
shows neutral, frees its PR lock, is queued again, and another worker completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from bot import create_app, sample
from bot.core.experiment_matrix import Candidate, Matrix
from bot.core.pr_facts import PullRequest
from bot.emulator import GitHubEmulator
from bot.errors import SettingsError
from bot.loopback import serve
from bot.runs import experiment_runs
from bot.settings import DEFAULT_SHUTDOWN_GRACE, Settings, shutdown_grace
from bot.state import candidates, deliveries, queues, running_jobs
from bot.state.deliveries import DeliveryState
from bot.state.queues import EVENTS, QUEUES, RUNS
from bot.state.run_locks import holder, pr_run_lock, release_if_held_by
from tests.support import SECRET, head_appeared, pull_request_event, run_jobs
from workers import jobs
from workers.interruptions import INTERRUPTED_TITLE, STALE_CLAIM

ROOT = Path(__file__).resolve().parent.parent
REPO = "octo/model"
INSTALLATION = 42
# Loaded machines start Python slowly: generous waits, exact verdicts.
WAIT = 120.0

# An evaluate.py that says it started, then waits while the test holds it.
HOLDING_EVALUATE = """\
import json, os, pathlib, time
pathlib.Path({started!r}).write_text(str(os.getpid()))
while os.path.exists({hold!r}):
    time.sleep(0.05)
json.dump({{"accuracy": 0.95, "loss": 0.30}}, open("metrics.json", "w"))
"""


def wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: only its parent has not asked how.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process under it, as a lost machine would: its process group
    at once (a worker started by `Stack.worker` leads its own), then any descendant that left
    it, so that no worker outlives its test and takes the next test's jobs."""
    victims = [pid, *descendants(pid)]
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # no group of that id is left
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Stack:
    """The web over HTTP and real `mlgate worker` processes, against the emulator."""

    def __init__(
        self, emulator: GitHubEmulator, conn: redis.Redis, env: dict[str, str], logs: Path
    ) -> None:
        self.emulator, self.conn, self.env, self.logs = emulator, conn, env, logs
        self.workers: list[subprocess.Popen[bytes]] = []

    def worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """`mlgate worker`, its log in the test's directory (shown when a test fails)."""
        log = self.logs / f"worker-{len(self.workers)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "worker", *args],
                cwd=ROOT,
                env=os.environ | self.env | env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its group: `close` ends every process of it
            )
        self.workers.append(process)
        return process

    def tails(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-40:])
            for log in sorted(self.logs.glob("worker-*.log"))
        )

    def close(self) -> None:
        for process in self.workers:
            # Also when the machine has ended: a worker process it started may live on.
            kill_tree(process.pid)
            process.wait(timeout=30)


@pytest.fixture
def stack(
    github_env: dict[str, str],
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    # Repository commands read the test's files outside their checkout: no sandbox here.
    monkeypatch.setenv("MLGATE_SANDBOX", "none")
    env = github_env | {"MLGATE_SANDBOX": "none", "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with serve(create_app(env)) as url:
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)
        running = Stack(emulator, redis_conn, env, tmp_path)
        try:
            yield running
        finally:
            running.close()
            print(running.tails())


class HeldRun:
    """A PR whose evaluation waits in evaluate.py until released."""

    def __init__(self, stack: Stack, tmp_path: Path) -> None:
        self.stack = stack
        self.started = tmp_path / "started"
        self.hold = tmp_path / "hold"
        self.hold.write_text("held")
        emulator = stack.emulator
        emulator.add_installation(INSTALLATION, "octo")
        files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
        emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
        emulator.set_permission(REPO, "alice", "write")
        script = HOLDING_EVALUATE.format(started=str(self.started), hold=str(self.hold))
        better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
        change: dict[str, str | bytes | None] = {
            name: better[name] for name in ("data/images.dvc", "dvc.lock", "data/features.csv")
        }
        change["evaluate.py"] = script
        emulator.repo(REPO).commit("feature", change, "new data, slow evaluation", author="alice")
        pull = emulator.open_pull_request(REPO, head="feature", base="main", user="alice")
        self.number = int(pull["number"])
        self.sha = str(pull["head"]["sha"])

    def queue(self) -> Job:
        """The PR opened: its event routed here, its run waiting on `runs`."""
        event = pull_request_event(self.stack.emulator, REPO, self.number, "opened")
        assert self.stack.emulator.send_webhook("pull_request", event) == 202
        conn = self.stack.conn
        SimpleWorker([Queue(EVENTS, connection=conn)], connection=conn).work(burst=True)
        [job_id] = Queue(RUNS, connection=conn).job_ids
        return Job.fetch(job_id, connection=conn)

    def wait_until_evaluating(self) -> int:
        wait_for(self.started.exists, "evaluate.py to start")
        return int(self.started.read_text())

    def release(self) -> None:
        self.hold.unlink()

    def quality(self) -> list[dict[str, Any]]:
        runs = self.stack.emulator.check_runs(REPO, self.sha)
        return [r for r in runs if r["name"] == "mlgate/quality"]

    def lock_holder(self) -> str | None:
        return holder(self.stack.conn, REPO, self.number)


def started_entry(conn: redis.Redis, job: Job) -> str:
    """The started registry's entry of `job`: its id and its execution's."""
    [entry] = running_jobs.started(conn, job.origin)
    assert entry.job_id == job.id
    return entry.entry


def assert_interrupted_and_queued_again(run: HeldRun, queued: Job) -> None:
    check = run.quality()[-1]
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert check["output"]["title"] == INTERRUPTED_TITLE
    assert "interrupted by a worker restart; queued again" in check["output"]["summary"]
    assert run.lock_holder() is None
    conn = run.stack.conn
    assert Queue(RUNS, connection=conn).job_ids == [queued.id]
    again = Job.fetch(queued.id, connection=conn)
    assert again.get_status() == JobStatus.QUEUED
    assert (again.func_name, again.args, again.kwargs) == (
        queued.func_name,
        queued.args,
        queued.kwargs,
    )
    assert running_jobs.started(conn, RUNS) == []


def assert_completed_by_another_worker(run: HeldRun) -> None:
    run.release()
    second = run.stack.worker("--burst")
    assert second.wait(timeout=WAIT) == 0
    comments = run.stack.emulator.comments(REPO, run.number)
    assert len(comments) == 1
    final = run.quality()[-1]
    assert (final["status"], final["conclusion"]) == ("completed", "success")
    assert run.lock_holder() is None
    assert Queue(RUNS, connection=run.stack.conn).job_ids == []


def test_sigterm_interrupts_a_run_after_the_grace_and_queues_it_again(
    stack: Stack, tmp_path: Path
) -> None:
    run = HeldRun(stack, tmp_path)
    queued = run.queue()
    worker = stack.worker(MLGATE_SHUTDOWN_GRACE="1")
    evaluate_pid = run.wait_until_evaluating()
    assert run.lock_holder() == started_entry(run.stack.conn, queued)  # the run's own

    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=WAIT) == 0
    # The grace was given (1 s), and the evaluation's own process went with the horse.
    assert time.monotonic() - stopped_at >= 1.0
    wait_for(lambda: not alive(evaluate_pid), "evaluate.py to be gone", 10)
    # It took no new job: the run it queued again is still waiting.
    assert_interrupted_and_queued_again(run, queued)
    assert_completed_by_another_worker(run)


def test_a_run_that_ends_within_the_grace_is_not_interrupted(stack: Stack, tmp_path: Path) -> None:
    run = HeldRun(stack, tmp_path)
    run.queue()
    worker = stack.worker(MLGATE_SHUTDOWN_GRACE="120")
    run.wait_until_evaluating()
    worker.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert worker.poll() is None  # waiting for its job
    run.release()
    assert worker.wait(timeout=WAIT) == 0
    conclusions = [c["conclusion"] for c in run.quality()]
    assert conclusions == ["success"]
    assert len(stack.emulator.comments(REPO, run.number)) == 1
    assert Queue(RUNS, connection=stack.conn).job_ids == []
    assert run.lock_holder() is None


@pytest.mark.parametrize("taker", ["none yet", "died after its claim"])
def test_the_sweep_takes_back_the_run_of_a_killed_worker(
    stack: Stack, tmp_path: Path, taker: str
) -> None:
    run = HeldRun(stack, tmp_path)
    queued = run.queue()
    worker = stack.worker()
    run.wait_until_evaluating()
    # A live worker's run is left alone.
    assert jobs.recover_interrupted_jobs() == []
    assert run.lock_holder() == started_entry(stack.conn, queued)

    kill_tree(worker.pid)  # the whole machine: worker, work horse, evaluate.py
    worker.wait(timeout=30)
    # Nothing said so: the run still looks started and holds the lock...
    assert Job.fetch(queued.id, connection=stack.conn).get_status() == JobStatus.STARTED
    assert run.lock_holder() == started_entry(stack.conn, queued)
    assert run.quality()[-1]["status"] == "in_progress"
    # ...until its heartbeat has expired, which the scheduler's sweep notices.
    wait_for(
        lambda: bool(running_jobs.silent(stack.conn, QUEUES)),
        "the heartbeat to expire",
        running_jobs.HEARTBEAT_TTL + 30,
    )
    if taker == "died after its claim":
        # Another sweep claimed it two minutes ago and died before queueing it again.
        [entry] = running_jobs.silent(stack.conn, QUEUES)
        assert running_jobs.claim(stack.conn, entry, now=time.time() - 2 * STALE_CLAIM)
        assert running_jobs.silent(stack.conn, QUEUES) == []
    assert jobs.recover_interrupted_jobs() == [queued.id]
    assert_interrupted_and_queued_again(run, queued)
    # A second sweep finds nothing more to do.
    assert jobs.recover_interrupted_jobs() == []
    assert_completed_by_another_worker(run)


def test_a_delivery_done_before_its_worker_died_is_not_done_twice(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    emulator.repo(REPO).commit("feature", {"README.md": "changed\n"}, "c", author="alice")
    pull = emulator.open_pull_request(REPO, head="feature", base="main", user="alice")
    with serve(create_app(github_env)) as url:
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)
        event = pull_request_event(emulator, REPO, int(pull["number"]), "opened")
        assert emulator.send_webhook("pull_request", event, guid="twice-1") == 202
    SimpleWorker([Queue(EVENTS, connection=redis_conn)], connection=redis_conn).work(burst=True)
    assert deliveries.state(redis_conn, "github", "twice-1") == DeliveryState.DONE
    calls = len(emulator.requests)
    # Its worker died before rq recorded the end: the sweep queued the same job again.
    job = Job.fetch("github-twice-1", connection=redis_conn)
    Queue(EVENTS, connection=redis_conn).enqueue_job(job)
    SimpleWorker([Queue(EVENTS, connection=redis_conn)], connection=redis_conn).work(burst=True)
    assert Job.fetch("github-twice-1", connection=redis_conn).get_status() == JobStatus.FINISHED
    assert len(emulator.requests) == calls  # nothing asked of GitHub, nothing written
    assert deliveries.state(redis_conn, "github", "twice-1") == DeliveryState.DONE


def test_a_pr_lock_is_freed_only_for_the_run_that_holds_it(redis_conn: redis.Redis) -> None:
    lock = pr_run_lock(redis_conn, REPO, 7, 60)
    assert lock.acquire(token="evaluate-1:second")  # the run queued again holds it now
    assert not release_if_held_by(redis_conn, REPO, 7, "evaluate-1:first")  # a late taker
    assert holder(redis_conn, REPO, 7) == "evaluate-1:second"
    assert release_if_held_by(redis_conn, REPO, 7, "evaluate-1:second")
    assert holder(redis_conn, REPO, 7) is None


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def test_a_worker_process_that_ends_is_started_again_until_the_machine_stops(
    stack: Stack,
) -> None:
    machine = stack.worker()
    wait_for(lambda: len(children(machine.pid)) == 2, "two worker processes")
    first = children(machine.pid)
    # rq quits on a Redis error outside a job's wait (a Redis restart); here, a crash.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(children(machine.pid)) == 2 and victim not in children(machine.pid),
        "the ended worker process to be started again",
        30,
    )
    assert machine.poll() is None
    machine.send_signal(signal.SIGTERM)
    assert machine.wait(timeout=WAIT) == 0
    assert not any(alive(pid) for pid in first - {victim})
    with pytest.raises(ProcessLookupError):  # nor the one started again, nor any other
        os.killpg(machine.pid, 0)


# --- settings errors --------------------------------------------------------------------------


def test_a_settings_error_fails_the_job_once_with_the_fix_named(
    github_env: dict[str, str],
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    emulator.repo(REPO).commit("feature", {"README.md": "changed\n"}, "c", author="alice")
    pull = emulator.open_pull_request(REPO, head="feature", base="main", user="alice")
    with serve(create_app(github_env)) as url:
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)
        event = pull_request_event(emulator, REPO, int(pull["number"]), "opened")
        assert emulator.send_webhook("pull_request", event, guid="settings-1") == 202
    # The web accepted it with retries (MLGATE_RETRY_DELAYS=0,0); the worker's settings are
    # wrong: the App's key is missing.
    job = Job.fetch("github-settings-1", connection=redis_conn)
    assert job.retries_left == 2
    monkeypatch.delenv("GITHUB_PRIVATE_KEY")
    run_jobs(redis_conn)

    job = Job.fetch("github-settings-1", connection=redis_conn)
    assert job.get_status() == JobStatus.FAILED
    attempts = [r for r in caplog.records if "exception raised while executing" in r.message]
    assert len(attempts) == 1  # never retried
    [result] = job.results()
    assert result.exc_string is not None
    assert "GITHUB_PRIVATE_KEY is not a PEM private key: download one" in result.exc_string
    assert deliveries.state(redis_conn, "github", "settings-1") == DeliveryState.FAILED


def test_a_passing_fault_is_still_retried(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    emulator.repo(REPO).commit("feature", {"README.md": "changed\n"}, "c", author="alice")
    pull = emulator.open_pull_request(REPO, head="feature", base="main", user="alice")
    with serve(create_app(github_env)) as url:
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)
        event = pull_request_event(emulator, REPO, int(pull["number"]), "opened")
        assert emulator.send_webhook("pull_request", event, guid="fault-1") == 202
    # Every try of the first attempt (4) answers 502; the retry succeeds.
    emulator.inject_fault("*", r"/repos/octo/model", 502, times=4)
    run_jobs(redis_conn)
    job = Job.fetch("github-fault-1", connection=redis_conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 1  # the second of three attempts succeeded
    assert deliveries.state(redis_conn, "github", "fault-1") == DeliveryState.DONE


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", DEFAULT_SHUTDOWN_GRACE), ("90", 90.0), ("2m", 120.0), ("1.5", 1.5), ("0", 0.0)],
)
def test_the_shutdown_grace_is_read_as_a_duration(value: str, seconds: float) -> None:
    assert shutdown_grace({"MLGATE_SHUTDOWN_GRACE": value}) == seconds
    env = {"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "redis://x"}
    assert Settings.from_env(env | {"MLGATE_SHUTDOWN_GRACE": value}).shutdown_grace == seconds


@pytest.mark.parametrize("value", ["-1", "soon", "1x", "nan"])
def test_a_bad_shutdown_grace_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="MLGATE_SHUTDOWN_GRACE"):
        shutdown_grace({"MLGATE_SHUTDOWN_GRACE": value})


def test_sigterm_queues_a_matrix_candidate_again_without_touching_mlgate_quality(
    stack: Stack, tmp_path: Path
) -> None:
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.write_text("held")
    emulator, conn = stack.emulator, stack.conn
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run", retrain=True)
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    emulator.set_permission(REPO, "alice", "write")
    # retrain.run is `python3 evaluate.py` here: the candidate's retrain holds.
    script = HOLDING_EVALUATE.format(started=str(started), hold=str(hold))
    emulator.repo(REPO).commit("feature", {"evaluate.py": script}, "slow", author="alice")
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    head_appeared(conn, emulator, REPO, number)
    pr = PullRequest.from_api(emulator.pull_request(REPO, number), emulator.repository(REPO))
    matrix = Matrix((Candidate(1, {}), Candidate(2, {})))
    [run] = experiment_runs.start(conn, pr, INSTALLATION, matrix, "alice", None).runs
    assert queues.enqueue_run(conn, run.kind, run.func, REPO, number, run.sha, **run.job)
    [job_id] = Queue(RUNS, connection=conn).job_ids

    worker = stack.worker(MLGATE_SHUTDOWN_GRACE="1")
    wait_for(started.exists, "the candidate's retrain to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=WAIT) == 0
    # Queued again, its lock freed, and nothing shown on the head's mlgate/quality.
    assert Queue(RUNS, connection=conn).job_ids == [job_id]
    assert holder(conn, REPO, number) is None
    assert emulator.check_runs(REPO, pr.head_sha) == []

    hold.unlink()
    second = stack.worker("--burst")
    assert second.wait(timeout=WAIT) == 0
    record = candidates.matrix(conn, REPO, number)
    assert record is not None
    found = candidates.results(conn, REPO, number, record.id)
    assert {n: r.status for n, r in found.items()} == {1: "passed", 2: "passed"}
    assert emulator.check_runs(REPO, pr.head_sha) == []
