"""One measured event each: a webhook sent, its effects polled at 5 ms, its API calls counted."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from rq.job import Job, JobStatus

from bench.evaluation_flow import calls
from bench.evaluation_flow.stack import Stack
from bot import sample
from bot.core.report import MARKER, parse_data
from bot.emulator import GitHubEmulator, RecordedRequest
from bot.github.github_client import GitHubApp
from bot.runs.evaluation_queue import EVALUATE
from bot.state.baselines import baseline
from bot.state.installations import is_installed
from bot.state.queues import run_job_id
from bot.state.redis_conn import key

REPO = "acme/sample-model"
INSTALLATION = 7
# The installation baseline uses its own id, so it never touches the PR's installation.
BASELINE_INSTALLATION = 8
AUTHOR = "alice"
QUALITY = "mlgate/quality"
# What each push changes: the DVC data description, the lock file, the committed metrics.
CHANGED = ("dvc.lock", "data/images.dvc", "metrics.json")
POLL = 0.005
EVENT_TIMEOUT = 30.0

_CHECK_RUN = re.compile(r"/check-runs/(\d+)$")


class BenchError(Exception):
    """An event did not produce what it should have, within its time."""


@dataclass
class EventResult:
    """One pull_request webhook and everything it caused; times in ms from sending it."""

    event: str
    sha: str
    ack_ms: float
    comment_ms: float
    check_ms: float
    done_ms: float  # both jobs finished, so no later call can belong to this event
    conclusion: str | None
    expected: str | None
    calls: calls.EventCalls
    # (ms, method, path): when each call was first seen answered, 5 ms resolution.
    timeline: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return max(self.comment_ms, self.check_ms)

    def job_starts(self) -> tuple[float | None, float | None]:
        """When the `events` job made its first call, and the `runs` job its first."""
        own = [
            t
            for t, method, path in self.timeline
            if f"{method} {calls.route(path)}" != calls.TOKEN_PATTERN
        ]
        return (own[0] if own else None, own[1] if len(own) > 1 else None)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _sleep_until_next_poll(start: float) -> None:
    time.sleep(POLL - (time.perf_counter() - start) % POLL)


def change(version: sample.DataVersion, push: int | None = None) -> dict[str, str | bytes | None]:
    """The files of one push: a new data version, with its committed metrics.

    With `push`, each file also differs from every earlier push's (a YAML comment, JSON
    whitespace) while meaning the same, as a real push's new data and metrics do: no blob
    is one mlgate has read before. Without it, two versions alternate, so from the third
    push on every changed file is a blob seen before (a revert).
    """
    files = sample.files(version, sample.BASE_PARAMS, source="git")
    if push is not None:
        files["dvc.lock"] += f"# push {push}\n"
        files["data/images.dvc"] += f"# push {push}\n"
        files["metrics.json"] += " " * push
    return {name: files[name] for name in CHANGED}


def fill_bucket(stack: Stack) -> None:
    """Give the installation a full pacing bucket, as 10 s without a mutating call would.

    The bucket is one key holding its next token's time; a time in the past and no key are
    the same full bucket (bot/pacing.py), so deleting it stands for waiting up to 10 s.
    """
    stack.redis.delete(key("pace", INSTALLATION))


def forget_token(stack: Stack) -> None:
    """No cached installation token: the next job must ask GitHub for one."""
    stack.redis.delete(key("token", INSTALLATION))


def _pr_event(emulator: GitHubEmulator, action: str, number: int) -> dict[str, Any]:
    """A pull_request payload as GitHub sends it, from the emulator's own objects."""
    return {
        "action": action,
        "number": number,
        "pull_request": emulator.pull_request(REPO, number),
        "repository": emulator.repository(REPO),
        "installation": {"id": INSTALLATION},
        "sender": emulator.user_json(AUTHOR),
    }


def _comment_head(emulator: GitHubEmulator, number: int) -> str | None:
    for comment in emulator.comments(REPO, number):
        body = str(comment.get("body") or "")
        if body.startswith(MARKER):
            head = (parse_data(body) or {}).get("head")
            return str(head) if head is not None else None
    return None


def _quality_completed(recorded: list[RecordedRequest], sha: str) -> int | None:
    """The id of the check run this event completed (0: created completed), else None.

    The emulator's `check_runs()` runs git under its lock, which would slow the worker's
    own calls at a 5 ms poll; its request log is cheap, and is checked against
    `check_runs()` once the event is over.
    """
    for r in recorded:
        body = r.body if isinstance(r.body, dict) else {}
        if body.get("status") != "completed" or r.status >= 400:
            continue
        match = _CHECK_RUN.search(r.path)
        if r.method == "PATCH" and match and body.get("conclusion") != "cancelled":
            return int(match.group(1))
        if r.method == "POST" and r.path.endswith("/check-runs") and body.get("head_sha") == sha:
            return 0
    return None


def _wait_jobs(stack: Stack, job_ids: list[str], deadline: float) -> None:
    for job_id in job_ids:
        while True:
            stack.check_worker()
            job = Job.fetch(job_id, stack.redis) if Job.exists(job_id, stack.redis) else None
            status = job.get_status() if job is not None else None
            if status == JobStatus.FINISHED:
                break
            if status in (JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED):
                raise BenchError(f"job {job_id} ended {status}")
            if time.monotonic() > deadline:
                raise BenchError(f"job {job_id} unfinished after {EVENT_TIMEOUT:.0f} s: {status}")
            time.sleep(POLL)


def pull_request_event(
    stack: Stack, action: str, number: int, refs: Mapping[str, str], expected: str | None
) -> EventResult:
    """Send one pull_request webhook; time the sticky comment and the completed check on the
    PR's head; then count the API calls of both jobs."""
    emulator = stack.emulator
    payload = _pr_event(emulator, action, number)
    sha = str(payload["pull_request"]["head"]["sha"])
    guid = str(uuid.uuid4())
    emulator.clear_requests()
    deadline = time.monotonic() + EVENT_TIMEOUT
    start = time.perf_counter()
    status = emulator.send_webhook("pull_request", payload, guid=guid)
    ack_ms = _ms(start)
    if status != 202:
        raise BenchError(f"the {action} webhook was answered {status}, not 202")
    comment_ms: float | None = None
    check_ms: float | None = None
    check_id: int | None = None
    timeline: list[tuple[float, str, str]] = []
    while comment_ms is None or check_ms is None:
        seen = emulator.requests
        if comment_ms is None and _comment_head(emulator, number) == sha:
            comment_ms = _ms(start)
        if check_ms is None:
            check_id = _quality_completed(seen, sha)
            check_ms = _ms(start) if check_id is not None else None
        now = round(_ms(start), 1)
        timeline += [(now, r.method, r.path) for r in seen[len(timeline) :]]
        if time.monotonic() > deadline:
            stack.check_worker()
            raise BenchError(
                f"{action} {sha[:7]}: after {EVENT_TIMEOUT:.0f} s, comment on the head: "
                f"{comment_ms is not None}, {QUALITY} completed: {check_ms is not None}"
            )
        _sleep_until_next_poll(start)
    _wait_jobs(stack, [f"github-{guid}", run_job_id(EVALUATE, REPO, number, sha)], deadline)
    done_ms = _ms(start)
    recorded = emulator.requests
    timeline += [(round(done_ms, 1), r.method, r.path) for r in recorded[len(timeline) :]]
    runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == QUALITY]
    run = runs[-1] if runs else {}
    if check_id and run.get("id") != check_id:
        raise BenchError(f"check run {check_id}, seen completed, is not {QUALITY} on {sha[:7]}")
    return EventResult(
        event=f"pull_request.{action}",
        sha=sha,
        ack_ms=round(ack_ms, 1),
        comment_ms=round(comment_ms, 1),
        check_ms=round(check_ms, 1),
        done_ms=round(done_ms, 1),
        conclusion=run.get("conclusion"),
        expected=expected,
        calls=calls.event_calls(f"pull_request.{action}", recorded, refs),
        timeline=timeline,
    )


def push_to_default_branch(stack: Stack) -> calls.EventCalls:
    """A push to main records the baseline PRs compare with, as in production."""
    emulator = stack.emulator
    sha = emulator.repo(REPO).head("main")
    payload = {
        "ref": "refs/heads/main",
        "after": sha,
        "deleted": False,
        "commits": [],
        "repository": emulator.repository(REPO),
        "installation": {"id": INSTALLATION},
        "sender": emulator.user_json(AUTHOR),
    }
    emulator.clear_requests()
    guid = str(uuid.uuid4())
    if emulator.send_webhook("push", payload, guid=guid) != 202:
        raise BenchError("the push webhook was not answered 202")
    deadline = time.monotonic() + EVENT_TIMEOUT
    _wait_jobs(stack, [f"github-{guid}", run_job_id("baseline", REPO, None, sha)], deadline)
    if baseline(stack.redis, REPO, sha) is None:
        raise BenchError("the push to main recorded no baseline")
    return calls.event_calls("push", emulator.requests, {sha: "main"})


def installation_event(stack: Stack, index: int) -> float:
    """ms from sending an `installation` webhook (no API call) until Redis holds its repo."""
    name = f"acme/bench-{index}"
    payload = {
        "action": "created",
        "installation": {"id": BASELINE_INSTALLATION, "account": {"login": "acme"}},
        "repositories": [{"id": 900_000 + index, "full_name": name, "private": False}],
        "sender": stack.emulator.user_json(AUTHOR),
    }
    guid = str(uuid.uuid4())
    deadline = time.monotonic() + EVENT_TIMEOUT
    start = time.perf_counter()
    if stack.emulator.send_webhook("installation", payload, guid=guid) != 202:
        raise BenchError("the installation webhook was not answered 202")
    while not is_installed(stack.redis, name):
        if time.monotonic() > deadline:
            raise BenchError(f"installation {index} not recorded after {EVENT_TIMEOUT:.0f} s")
        _sleep_until_next_poll(start)
    done = _ms(start)
    _wait_jobs(stack, [f"github-{guid}"], deadline)
    return done


def get_probes(stack: Stack, number: int, sha: str) -> dict[str, Callable[[], object]]:
    """Single GETs, raw and through mlgate's client (which reads its token from Redis).

    Listing comments runs no git in the emulator; reading a file does, as every read of
    the evaluation does.
    """
    app = GitHubApp(
        stack.env["GITHUB_APP_ID"], stack.env["GITHUB_PRIVATE_KEY"], stack.emulator.url, stack.redis
    )
    gh = app.client(INSTALLATION)
    headers = {
        "Authorization": f"Bearer {app.installation_token(INSTALLATION)}",
        "Accept": "application/vnd.github+json",
    }
    comments = f"/repos/{REPO}/issues/{number}/comments"
    contents = f"{stack.emulator.url}/repos/{REPO}/contents/metrics.json"

    def raw_comments() -> object:
        return requests.get(stack.emulator.url + comments, headers=headers, timeout=10)

    def raw_contents() -> object:
        return requests.get(contents, params={"ref": sha}, headers=headers, timeout=10)

    return {
        "raw GET comments": raw_comments,
        "raw GET contents": raw_contents,
        "mlgate client GET comments": lambda: gh.get_json(comments),
        "mlgate client GET contents": lambda: gh.get_contents(REPO, "metrics.json", sha),
    }


def time_probes(probes: Mapping[str, Callable[[], object]], into: dict[str, list[float]]) -> None:
    for name, probe in probes.items():
        start = time.perf_counter()
        probe()
        into.setdefault(name, []).append(_ms(start))
