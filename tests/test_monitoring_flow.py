"""Production monitoring end to end: live uploads in, one issue per environment out."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from bot import sample
from bot.core.monitoring import ISSUE_LABEL, marker
from bot.emulator import GitHubEmulator
from bot.state import audit, upload_tokens
from tests.support import Bot, run_jobs

REPO = "octo/model"
INSTALLATION = 42
DEPLOYED = "6fd84f4c2aecae7b1e6ce516b634c220d4a3e3e4"
CONFIG = """\
version: 1
gates:
  accuracy: {min: 0.85}
monitor:
  env: production
  window: 2
  on_breach: [issue, retrain]
"""


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS) | {".github/mlgate.yml": CONFIG}
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    return REPO


@pytest.fixture
def token(bot: Bot, repo: str) -> str:
    # The repository is known from its installation event, as in production.
    from bot.state import installations

    installations.record(bot.conn, INSTALLATION, [repo], [])
    return upload_tokens.create(bot.conn, repo, time.time())


def upload(bot: Bot, token: str, accuracy: float, env: str = "production") -> None:
    response = requests.post(
        f"{bot.url}/api/v1/metrics",
        params={"repo": REPO, "sha": DEPLOYED, "env": env},
        data=json.dumps({"accuracy": accuracy}),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    run_jobs(bot.conn)


def monitor_issues(emulator: GitHubEmulator, state: str = "open") -> list[dict[str, Any]]:
    return [
        i
        for i in emulator.issues(REPO)
        if i["state"] == state and any(label["name"] == ISSUE_LABEL for label in i["labels"])
    ]


def test_a_breach_opens_one_issue_that_is_updated_and_closed_on_recovery(
    bot: Bot, emulator: GitHubEmulator, token: str
) -> None:
    upload(bot, token, 0.9)
    upload(bot, token, 0.8)  # one failure: fewer than the window
    assert monitor_issues(emulator) == []

    upload(bot, token, 0.7)  # two in a row: the breach
    [issue] = monitor_issues(emulator)
    body = issue["body"]
    assert body.startswith(marker("production"))
    assert "fails its gates: 2 uploads in a row" in body
    assert "| Metric | Base | Head | Change | Gate |" in body
    assert "```mermaid" in body and "xychart-beta" in body
    assert "0.7" in body
    # on_breach: retrain is audited once, for the new breach.
    retrains = [e for e in audit.entries(bot.conn, REPO) if e.kind == "retrain"]
    assert [e.detail for e in retrains] == ["monitoring: production breached"]

    upload(bot, token, 0.6)  # still breached: the same issue, updated; no second retrain
    [same] = monitor_issues(emulator)
    assert same["number"] == issue["number"]
    assert "0.6" in same["body"]
    assert len([e for e in audit.entries(bot.conn, REPO) if e.kind == "retrain"]) == 1

    upload(bot, token, 0.9)  # recovering, not yet recovered
    assert [i["number"] for i in monitor_issues(emulator)] == [issue["number"]]
    upload(bot, token, 0.95)  # two passing in a row: closed with a comment
    assert monitor_issues(emulator) == []
    [closed] = monitor_issues(emulator, "closed")
    assert closed["number"] == issue["number"]
    comments = emulator.comments(REPO, issue["number"])
    assert comments[-1]["body"].startswith("Recovered: the last 2 uploads")


def test_a_lost_issue_number_never_opens_a_second_issue(
    bot: Bot, emulator: GitHubEmulator, token: str
) -> None:
    from bot.state import production_uploads

    upload(bot, token, 0.5)
    upload(bot, token, 0.5)
    [issue] = monitor_issues(emulator)
    production_uploads.set_open_issue(bot.conn, REPO, "production", None)  # Redis forgot it
    upload(bot, token, 0.4)
    assert [i["number"] for i in monitor_issues(emulator)] == [issue["number"]]


def test_an_environment_that_is_not_monitored_keeps_its_uploads_and_opens_nothing(
    bot: Bot, emulator: GitHubEmulator, token: str
) -> None:
    for value in (0.1, 0.1, 0.1):
        upload(bot, token, value, env="staging")
    assert monitor_issues(emulator) == []
    assert emulator.issues(REPO) == []


def test_on_breach_retrain_queues_a_retrain_of_the_default_branch(
    bot: Bot, emulator: GitHubEmulator, token: str
) -> None:
    from rq import Queue

    from bot.state import default_heads
    from bot.state.queues import RUNS

    head = emulator.repo(REPO).head("main")
    # The default branch as its last push showed it (the push handler records it).
    default_heads.record(bot.conn, REPO, default_heads.DefaultHead("main", head, INSTALLATION))
    upload(bot, token, 0.5)
    # Jobs run as they are queued in these tests: look at what the breach queued before that.
    requests.post(
        f"{bot.url}/api/v1/metrics",
        params={"repo": REPO, "sha": DEPLOYED, "env": "production"},
        data=json.dumps({"accuracy": 0.5}),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    from rq import SimpleWorker

    from bot.state.queues import EVENTS

    SimpleWorker([Queue(EVENTS, connection=bot.conn)], connection=bot.conn).work(burst=True)
    [job] = Queue(RUNS, connection=bot.conn).jobs
    assert job.func_name == "workers.jobs.retrain_default_branch"
    assert job.kwargs["request"]["trigger"] == "monitoring"
    assert job.kwargs["request"]["sha"] == head
    [issue] = monitor_issues(emulator)
    assert "a retrain of the default branch is queued for production" in issue["body"]
