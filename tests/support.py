"""Test helpers shared by every test module: real fixture payloads and signed webhook requests."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, SimpleWorker

from bot.core import signatures
from bot.core.pr_facts import github_time
from bot.state.pr_heads import record_appearance, record_head
from bot.state.queues import EVENTS, RUNS

if TYPE_CHECKING:
    from bot.emulator import GitHubEmulator

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-webhook-secret"
# The Semaphore project of the tests' repository, and its notification secret.
SEMAPHORE_REPO = "octo/model"
SEMAPHORE_PROJECT = "7379341d-a22a-475f-b0c9-4553b06a926c"
SEMAPHORE_SECRET = "semaphore-webhook-secret"


def payload(event: str, name: str = "payload") -> dict[str, Any]:
    """A real GitHub example payload: fixtures/github/<event>/<name>.json."""
    data = json.loads((FIXTURES / "github" / event / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def webhook_headers(
    event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    """Headers GitHub sends with a delivery, signed with `secret`."""
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signatures.sign(secret, body),
    }


def run_jobs(conn: redis.Redis) -> None:
    """Run every queued job in-process, as rq's own tests do."""
    queues = [Queue(name, connection=conn) for name in (EVENTS, RUNS)]
    SimpleWorker(queues, connection=conn).work(burst=True)


def github_event(
    emulator: GitHubEmulator, event: str, template: str, repo: str, sender: str, **fields: Any
) -> dict[str, Any]:
    """A real GitHub example payload rewritten to a repository of the emulator.

    `repository`, `installation` and `sender` come from the emulator; `fields` replace
    top-level keys (e.g. pull_request=emulator.pull_request(repo, 1)).
    """
    data = payload(event, template)
    emulated = emulator.repo(repo)
    data["repository"] = emulator.repository(repo)
    data["installation"] = {"id": emulated.installation_id, "node_id": "MDIzOkludGVncmF0aW9u"}
    data["sender"] = emulator.user_json(sender)
    data.pop("organization", None)
    data.update(fields)
    return data


def pull_request_event(
    emulator: GitHubEmulator, repo: str, number: int, action: str, sender: str | None = None
) -> dict[str, Any]:
    pull = emulator.pull_request(repo, number)
    template = "synchronize.payload" if action == "synchronize" else "opened.payload"
    return github_event(
        emulator,
        "pull_request",
        template,
        repo,
        sender or pull["user"]["login"],
        action=action,
        number=number,
        pull_request=pull,
    )


class Bot:
    """mlgate as deployed: the web app over real HTTP, webhooks sent by the emulator, and
    queued jobs run in-process as a worker would."""

    def __init__(self, emulator: GitHubEmulator, conn: redis.Redis, url: str) -> None:
        self.emulator, self.conn, self.url = emulator, conn, url
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)

    def deliver(self, event: str, data: dict[str, Any]) -> int:
        """Send a webhook like GitHub, then run every job it led to."""
        status = self.emulator.send_webhook(event, data)
        run_jobs(self.conn)
        return status


def comment_event(
    emulator: GitHubEmulator, repo: str, number: int, body: str, user: str
) -> dict[str, Any]:
    """`issue_comment` `created` for a new comment by `user` on PR `number`."""
    comment = emulator.add_comment(repo, number, body, user)
    pull = emulator.pull_request(repo, number)
    issue = payload("issue_comment", "created.payload")["issue"] | {
        "number": number,
        "title": pull["title"],
        "user": pull["user"],
        "pull_request": {"url": pull["url"], "html_url": pull["html_url"]},
    }
    return github_event(
        emulator,
        "issue_comment",
        "created.payload",
        repo,
        user,
        action="created",
        issue=issue,
        comment=comment,
    )


def head_appeared(conn: redis.Redis, emulator: GitHubEmulator, repo: str, number: int) -> None:
    """Record what mlgate's `opened` handler records about a PR's head: that it is the head,
    and when it appeared (the PR's `updated_at`). For tests that open a PR without delivering
    `opened`, whose evaluation would start runs they are not about: comments written since
    act on that head, as they do once GitHub's `opened` was handled."""
    pull = emulator.pull_request(repo, number)
    appeared = github_time(pull["updated_at"])
    assert appeared is not None
    record_head(conn, repo, number, str(pull["head"]["sha"]))
    record_appearance(conn, repo, number, str(pull["head"]["sha"]), appeared)


def bot_replies(emulator: GitHubEmulator, repo: str, number: int) -> list[str]:
    """mlgate's comments on PR `number` other than its sticky report, as GitHub shows them:
    without the hidden marker that ends each reply (bot/runs/publisher.py `reply_marker`)."""
    return [
        re.sub(r"\n\n<!-- mlgate:reply \d+ -->\Z", "", str(c["body"]))
        for c in emulator.comments(repo, number)
        if c["user"]["type"] == "Bot" and not str(c["body"]).startswith("<!-- mlgate:report")
    ]


def growth(run: Callable[[int], object], size: int) -> float:
    """How much longer `run(4 * size)` takes than `run(size)`, each the best of three: about 4
    for linear work, 16 for quadratic. A ratio measured in one run, not a wall-clock bound, so
    a loaded machine slows both sides alike."""

    def best(n: int) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run(n)
            times.append(time.perf_counter() - started)
        return min(times)

    return best(4 * size) / best(size)
