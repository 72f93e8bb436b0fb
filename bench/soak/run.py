"""One soak run: signed deliveries sent to `mlgate serve` under chaos, then every effect counted."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from bench.soak.chaos import ChaosError, FaultyGitHub, OwnRedis, Processes, free_port
from bot import sample
from bot.core import signatures
from bot.core.report import MARKER
from bot.settings import Settings
from bot.state import running_jobs
from bot.state.deliveries import DeliveryState, delivery_key
from bot.state.queues import QUEUES
from bot.state.redis_conn import connect
from tests.support import comment_event, pull_request_event
from workers import interruptions
from workers.interruptions import INTERRUPTED_TITLE

APP_ID = "1"
SECRET = "soak-webhook-secret"
AUTHOR = "alice"
INSTALLATIONS = 1000  # the first installation id; one per PR, so pacing is per PR
COMMAND = "/help"
TAKEN_BACK = "job interrupted by a worker restart: queued again"


@dataclass(frozen=True)
class SoakConfig:
    """What one run sends and breaks."""

    deliveries: int = 10_000
    duplicates: float = 0.05  # of `deliveries`: sent again with an id sent before
    prs: int = 40
    commands: float = 0.2  # of the comments: `/help`, answered with a reply and a reaction
    fault_rate: float = 0.2  # of GitHub's answers
    rate: float = 40.0  # deliveries sent per second
    senders: int = 8  # connections sending at once
    restart_redis: bool = True
    redis_down: float = 3.0  # seconds Redis stays down
    kill_worker: bool = True
    machines: int = 2  # `mlgate worker` processes (machines) at once
    runs_per_machine: int = 1
    retry_delays: str = "2,5,10"
    shutdown_grace: str = "10"
    # None: `mlgate scheduler` sweeps for dead workers' jobs (every 30 s); else this process
    # sweeps every so many seconds, for a short run.
    sweep_every: float | None = None
    # Draining stops when everything settled, after nothing moved (delivery states, queues)
    # for `stall_timeout` seconds, or at the latest after `drain_timeout` seconds: a slow
    # machine takes long to work through 10,000 jobs, which is no loss.
    drain_timeout: float = 3600.0
    stall_timeout: float | None = 120.0
    seed: int = 11


@dataclass(frozen=True)
class Delivery:
    guid: str
    event: str
    body: bytes
    pr: int  # index of the PR it is about
    command: bool  # a `/help` comment


@dataclass
class PrTally:
    repo: str
    sticky_comments: int
    replies: int
    commands: int
    quality_checks: int
    interrupted_checks: int
    final_conclusion: str | None
    quality_history: list[str] = field(default_factory=list)


@dataclass
class SoakReport:
    """Everything counted; `verdicts` says which criterion held."""

    config: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    github: dict[str, int] = field(default_factory=dict)
    chaos: dict[str, float] = field(default_factory=dict)
    prs: list[PrTally] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    duplicate_effects: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def _environment(
    github: FaultyGitHub, own: OwnRedis, work: Path, config: SoakConfig
) -> dict[str, str]:
    """The processes' environment: nothing of the caller's mlgate, GitHub or Redis settings."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLGATE_", "GITHUB_", "SEMAPHORE_", "REDIS_", "PROMETHEUS_"))
    }
    return kept | {
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "REDIS_URL": own.url,
        "GITHUB_APP_ID": APP_ID,
        "GITHUB_PRIVATE_KEY": github.app_private_key_pem,
        "GITHUB_API_URL": github.url,
        "MLGATE_DATA_DIR": str(work / "data"),
        "MLGATE_RETRY_DELAYS": config.retry_delays,
        "MLGATE_SHUTDOWN_GRACE": config.shutdown_grace,
        "WEB_CONCURRENCY": "2",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _repositories(github: FaultyGitHub, prs: int) -> list[str]:
    """One repository per PR, each in its own installation, with a PR that improves the model."""
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    changed = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    repos = []
    for index in range(prs):
        owner, repo = f"org{index}", f"org{index}/model"
        github.add_installation(INSTALLATIONS + index, owner)
        base = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
        github.create_repo(repo, installation_id=INSTALLATIONS + index, files=base)
        github.set_permission(repo, AUTHOR, "write")
        github.repo(repo).commit("feature", {n: better[n] for n in changed}, "data", author=AUTHOR)
        github.open_pull_request(repo, head="feature", base="main", user=AUTHOR, title="Data")
        repos.append(repo)
    return repos


def _plan(github: FaultyGitHub, repos: list[str], config: SoakConfig) -> list[Delivery]:
    """Unique deliveries, with PRs opened evenly through them, then duplicates mixed in."""
    rng = random.Random(config.seed)
    total = config.deliveries
    duplicates = round(total * config.duplicates)
    unique = total - duplicates
    opened_at = {round(i * unique / len(repos)): i for i in range(len(repos))}
    plan: list[Delivery] = []
    for position in range(unique):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if position in opened_at:
            pr = opened_at[position]
            data = pull_request_event(github, repos[pr], 1, "opened")
            plan.append(Delivery(guid, "pull_request", json.dumps(data).encode(), pr, False))
            continue
        pr = rng.randrange(len(repos))
        command = rng.random() < config.commands
        text = COMMAND if command else f"Looks fine to me ({position})."
        data = comment_event(github, repos[pr], 1, text, AUTHOR)
        plan.append(Delivery(guid, "issue_comment", json.dumps(data).encode(), pr, command))
    for _ in range(duplicates):
        # Sent again a little later, as GitHub's own redelivery or a retrying proxy would.
        position = rng.randrange(20, len(plan))
        plan.insert(position, plan[rng.randrange(position - 20 + 1)])
    return plan


class Sender:
    """Signs and sends deliveries from a pool of connections, and keeps every answer."""

    def __init__(self, url: str, senders: int) -> None:
        self.url = f"{url}/webhooks/github"
        self.answers: dict[str, list[int]] = defaultdict(list)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.pool = ThreadPoolExecutor(senders, thread_name_prefix="soak-send")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def send(self, delivery: Delivery) -> int:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/soak",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.guid,
            "X-Hub-Signature-256": signatures.sign(SECRET, delivery.body),
        }
        try:
            status = (
                self._session()
                .post(self.url, data=delivery.body, headers=headers, timeout=10)
                .status_code
            )
        except requests.RequestException:
            status = 0
        with self._lock:
            self.answers[delivery.guid].append(status)
        return status

    def unanswered(self) -> list[str]:
        """Ids whose last answer was not 2xx: GitHub marks those failed and redelivers them."""
        with self._lock:
            return [g for g, s in self.answers.items() if not 200 <= s[-1] < 300]


def _metric_sums(text: str, name: str, label: str) -> dict[str, int]:
    sums: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            sums[labels.get(label, "")] += int(float(line.rsplit(" ", 1)[1]))
    return dict(sums)


def _settled(conn: redis.Redis, guids: list[str]) -> tuple[bool, Counter[str]]:
    """Whether every delivery's job has ended and nothing waits or runs; the states."""
    states: Counter[str] = Counter()
    for start in range(0, len(guids), 1000):
        chunk = guids[start : start + 1000]
        for value in conn.mget([delivery_key("github", g) for g in chunk]):
            states[value.decode() if isinstance(value, bytes) else "none"] += 1
    busy = any(Queue(q, connection=conn).count for q in QUEUES)
    busy = busy or _running(conn)
    busy = busy or any(_scheduled(conn, q) for q in QUEUES)
    ended = states[DeliveryState.DONE] + states[DeliveryState.FAILED]
    return (ended == len(guids) and not busy), states


def _backlog(conn: redis.Redis) -> dict[str, int]:
    """Jobs queued, and waiting for their retry delay, per queue: what draining works through."""
    counts = {f"{q} queued": Queue(q, connection=conn).count for q in QUEUES}
    return counts | {f"{q} scheduled": _scheduled(conn, q) for q in QUEUES}


def _running(conn: redis.Redis) -> bool:
    """Whether a job is started (rq may keep stale entries of jobs that ended meanwhile)."""
    entries = [e for q in QUEUES for e in running_jobs.started(conn, q)]
    statuses = [conn.hget(Job.key_for(e.job_id), "status") for e in entries]
    return any(s == JobStatus.STARTED.value.encode() for s in statuses)


def _scheduled(conn: redis.Redis, queue: str) -> int:
    """Jobs waiting for their retry delay."""
    registry = ScheduledJobRegistry(queue, connection=conn)  # type: ignore[no-untyped-call]
    return int(registry.count)


def _wait_for_workers(conn: redis.Redis, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=conn)) < count:
        if time.monotonic() > deadline:
            raise ChaosError(f"fewer than {count} rq workers registered within {timeout:.0f} s")
        time.sleep(0.2)


def soak(config: SoakConfig, *, quiet: bool = False, work_dir: Path | None = None) -> SoakReport:
    """Run the whole soak; the report says what held."""
    report = SoakReport(config=asdict(config))
    work = Path(tempfile.mkdtemp(prefix="mlgate-soak-")) if work_dir is None else work_dir
    own = OwnRedis(work / "redis")
    github = FaultyGitHub(app_id=APP_ID, root=work / "github", fault_rate=0.0, seed=config.seed)
    processes: Processes | None = None
    stop_sweeping = threading.Event()
    swept: list[str] = []  # jobs this process's own sweep queued again
    sweeper: threading.Thread | None = None
    began = time.monotonic()
    try:
        own.start()
        github.start()
        env = _environment(github, own, work, config)
        processes = Processes(env, work / "logs")
        web = processes.web(free_port())
        github.configure_webhook(f"{web}/webhooks/github", SECRET)
        runs = str(config.runs_per_machine)
        for machine in range(config.machines):
            processes.start(f"worker-{machine}", "worker", "--runs", runs)
        conn = connect(own.url, socket_timeout=5)
        _wait_for_workers(conn, config.machines * (1 + config.runs_per_machine))
        if config.sweep_every is None:
            processes.start("scheduler", "scheduler")
        else:
            sweeper = threading.Thread(
                target=_sweep_now_and_then,
                args=(own.url, env, config.sweep_every, stop_sweeping, swept),
                daemon=True,
            )
            sweeper.start()

        repos = _repositories(github, config.prs)
        plan = _plan(github, repos, config)
        report.seconds["setup"] = round(time.monotonic() - began, 1)
        _say(f"set up in {report.seconds['setup']:.0f} s; sending {len(plan)} deliveries", quiet)
        github.fault_rate = config.fault_rate

        sender = Sender(web, config.senders)
        chaos: list[threading.Thread] = []
        restart_at = len(plan) // 3 if config.restart_redis else -1
        kill_at = 2 * len(plan) // 3 if config.kill_worker else -1
        sending = time.monotonic()
        futures = []
        for position, delivery in enumerate(plan):
            due = sending + position / config.rate
            time.sleep(max(0.0, due - time.monotonic()))
            if position == restart_at:
                _say(f"restarting Redis ({config.redis_down:g} s down)", quiet)
                thread = threading.Thread(target=own.restart, args=(config.redis_down,))
                thread.start()
                chaos.append(thread)
            if position == kill_at:
                killed = processes.kill("worker-0")
                report.chaos["processes_killed"] = killed
                spare = f"worker-{config.machines}"
                _say(f"SIGKILL worker-0 ({killed} processes); starting {spare}", quiet)
                processes.start(spare, "worker", "--runs", runs)
            futures.append(sender.pool.submit(sender.send, delivery))
        for future in futures:
            future.result()
        for thread in chaos:
            thread.join()
        report.seconds["sending"] = round(time.monotonic() - sending, 1)

        # GitHub marks deliveries without a 2xx answer failed; they are delivered again.
        by_guid = {d.guid: d for d in plan}
        resent = 0
        for _ in range(60):
            pending = sender.unanswered()
            if not pending:
                break
            time.sleep(1.0)
            resent += len(pending)
            for future in [sender.pool.submit(sender.send, by_guid[g]) for g in pending]:
                future.result()

        draining = time.monotonic()
        guids = list(by_guid)
        settled, states = False, Counter[str]()
        seen: object = None
        moved, said = draining, 0.0
        while time.monotonic() - draining < config.drain_timeout:
            try:
                settled, states = _settled(conn, guids)
                backlog = _backlog(conn)
                now_seen: object = (sorted(states.items()), sorted(backlog.items()))
            except redis.RedisError:
                settled, now_seen = False, seen
            if settled:
                break
            if now_seen != seen:
                seen, moved = now_seen, time.monotonic()
                if moved - said >= 10:
                    said = moved
                    _say(f"draining: deliveries {dict(states)}, jobs waiting {backlog}", quiet)
            elif config.stall_timeout is not None:
                if time.monotonic() - moved > config.stall_timeout:
                    break
            time.sleep(1.0)
        report.seconds["draining"] = round(time.monotonic() - draining, 1)
        report.seconds["total"] = round(time.monotonic() - began, 1)
        sender.pool.shutdown()

        _tally(report, config, plan, sender, resent, states, settled, github, repos)
        metrics = requests.get(f"{web}/metrics", timeout=10).text
        report.jobs = _metric_sums(metrics, "mlgate_jobs_total", "status")
        report.github = _metric_sums(metrics, "mlgate_github_requests_total", "status")
        report.chaos |= {
            "github_answers": github.answered,
            "github_502": github.injected[502],
            "github_403_retry_after": github.injected[403],
            "redis_down_s": round(own.downtime, 1),
            "jobs_taken_back": processes.log_lines(TAKEN_BACK) + len(swept),
        }
        return report
    finally:
        stop_sweeping.set()
        if sweeper is not None:
            sweeper.join(timeout=60)
        if processes is not None:
            processes.stop_all()
        github.stop()
        own.stop()
        if work_dir is None and os.environ.get("MLGATE_SOAK_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        elif not quiet:
            print(f"kept {work}")


def _sweep_now_and_then(
    url: str, env: dict[str, str], every: float, stop: threading.Event, swept: list[str]
) -> None:
    """What `mlgate scheduler`'s periodic job does, more often (a short run cannot wait 30 s);
    the ids of the jobs it queued again go to `swept`."""
    settings = Settings.from_env(env)
    conn = connect(url, socket_timeout=5)
    try:
        while not stop.wait(every):
            try:
                swept.extend(interruptions.sweep(conn, settings))
            except redis.RedisError:
                pass  # Redis restarting: the next sweep
    finally:
        conn.close()


def _tally(
    report: SoakReport,
    config: SoakConfig,
    plan: list[Delivery],
    sender: Sender,
    resent: int,
    states: Counter[str],
    settled: bool,
    github: FaultyGitHub,
    repos: list[str],
) -> None:
    unique = {d.guid: d for d in plan}
    answers = Counter(s for statuses in sender.answers.values() for s in statuses)
    report.sent = {
        "deliveries": len(plan) + resent,
        "unique": len(unique),
        "duplicates": len(plan) - len(unique),
        "resent_after_no_2xx": resent,
    }
    report.answers = {str(status): count for status, count in sorted(answers.items())}
    report.answers["2xx"] = sum(c for s, c in answers.items() if 200 <= s < 300)
    accepted_twice = sum(1 for s in sender.answers.values() if s.count(202) > 1)

    commands: Counter[int] = Counter(d.pr for d in unique.values() if d.command)
    for index, repo in enumerate(repos):
        comments = [c for c in github.comments(repo, 1) if c["user"]["login"] == github.bot_login]
        sticky = sum(1 for c in comments if str(c["body"]).startswith(MARKER))
        head = github.pull_request(repo, 1)["head"]["sha"]
        quality = [r for r in github.check_runs(repo, head) if r["name"] == "mlgate/quality"]
        interrupted = sum(1 for r in quality if r["output"]["title"] == INTERRUPTED_TITLE)
        final = quality[-1] if quality else None
        report.prs.append(
            PrTally(
                repo=repo,
                sticky_comments=sticky,
                replies=len(comments) - sticky,
                commands=commands[index],
                quality_checks=len(quality),
                interrupted_checks=interrupted,
                final_conclusion=final["conclusion"] if final is not None else None,
                quality_history=[f"{r['conclusion']}: {r['output']['title']}" for r in quality],
            )
        )
    prs = report.prs
    report.lost = {
        "deliveries_not_done": len(unique) - states[DeliveryState.DONE],
        "deliveries_failed": states[DeliveryState.FAILED],
        "prs_without_sticky_comment": sum(1 for p in prs if p.sticky_comments == 0),
        "commands_without_reply": sum(max(p.commands - p.replies, 0) for p in prs),
        "prs_without_final_check": sum(1 for p in prs if p.final_conclusion is None),
    }
    report.duplicate_effects = {
        "deliveries_accepted_twice": accepted_twice,
        "extra_sticky_comments": sum(max(p.sticky_comments - 1, 0) for p in prs),
        "extra_replies": sum(max(p.replies - p.commands, 0) for p in prs),
    }
    report.verdicts = {
        "settled within the drain timeout": settled,
        "every delivery answered 2xx in the end": not sender.unanswered(),
        "deliveries lost: 0": report.lost["deliveries_not_done"] == 0,
        "exactly one sticky comment per PR": all(p.sticky_comments == 1 for p in prs),
        "every command answered once": all(p.replies == p.commands for p in prs),
        "every PR's quality check passed": all(p.final_conclusion == "success" for p in prs),
        "duplicate effects: 0": sum(report.duplicate_effects.values()) == 0,
    }
