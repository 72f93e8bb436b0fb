"""Evaluations and retrains run as Semaphore workflows, published when the pipeline is done."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis
import requests

from bot import sample
from bot.core.report import parse_data
from bot.emulator import GitHubEmulator
from bot.emulator.semaphore_emulator import SemaphoreEmulator
from bot.semaphore.pipelines import describe_failure, parse_pipeline_done
from bot.semaphore.semaphore_client import SemaphoreClient
from bot.state import upload_tokens
from bot.state.semaphore_runs import find_run
from tests.support import FIXTURES as ALL_FIXTURES
from tests.support import SEMAPHORE_PROJECT as PROJECT
from tests.support import (
    SEMAPHORE_REPO,
    SEMAPHORE_SECRET,
    Bot,
    comment_event,
    github_event,
    head_appeared,
    pull_request_event,
    run_jobs,
)

REPO = SEMAPHORE_REPO
pytestmark = pytest.mark.usefixtures("semaphore")
CONFIG = f"""\
version: 1
metrics: {{source: semaphore}}
semaphore:
  project_id: {PROJECT}
  pipeline_file: .semaphore/evaluate.yml
retrain:
  runner: semaphore
  pipeline_file: .semaphore/retrain.yml
  parameters:
    model: {{type: string, choices: [xgboost, random_forest], default: xgboost}}
    epochs: {{type: int, min: 1, max: 500, default: 30}}
gates:
  accuracy: {{min: 0.80}}
"""
ROLES = {"ada": "admin", "alice": "write", "rita": "read"}
UPLOADED = {"accuracy": 0.9321, "loss": 0.21}
FIXTURES = ALL_FIXTURES / "semaphore"


@pytest.fixture
def pr(emulator: GitHubEmulator, redis_conn: redis.Redis) -> int:
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS) | {".github/mlgate.yml": CONFIG}
    emulator.create_repo(REPO, installation_id=42, files=files)
    for user, role in ROLES.items():
        emulator.set_permission(REPO, user, role)
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    emulator.repo(REPO).commit("feature", {n: better[n] for n in ("dvc.lock", "data/images.dvc")})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    head_appeared(redis_conn, emulator, REPO, number)
    return number


def head(emulator: GitHubEmulator, number: int) -> str:
    return str(emulator.pull_request(REPO, number)["head"]["sha"])


def say(bot: Bot, number: int, body: str, user: str) -> dict[str, Any]:
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.deliver("issue_comment", event) == 202
    comment: dict[str, Any] = event["comment"]
    return comment


def reactions(emulator: GitHubEmulator, comment: dict[str, Any]) -> list[str]:
    return [r["content"] for r in emulator.reactions(comment["id"])]


def quality(emulator: GitHubEmulator, sha: str) -> dict[str, Any]:
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"][-1]


def report(emulator: GitHubEmulator, number: int) -> dict[str, Any]:
    body = next(c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"])
    data = parse_data(body)
    assert data is not None
    return data | {"body": body}


def upload(bot: Bot, sha: str, run: str, metrics: dict[str, float] = UPLOADED) -> None:
    """What the pipeline's job does: the README's curl line, with the repository's token."""
    token = upload_tokens.create(bot.conn, REPO, time.time())
    answer = requests.post(
        f"{bot.url}/api/v1/metrics",
        params={"repo": REPO, "sha": sha, "run": run},
        data=json.dumps(metrics).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


def notify(
    bot: Bot, sem: SemaphoreEmulator, payload: dict[str, Any], webhook_id: str | None = None
) -> int:
    """Semaphore's signed pipeline-done webhook to mlgate, then every job it led to."""
    answer = sem.deliver(
        f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET, webhook_id=webhook_id
    )
    run_jobs(bot.conn)
    return answer.status_code


def github_writes(emulator: GitHubEmulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests if r.method in ("POST", "PATCH")]


def test_retrain_starts_one_workflow_and_its_uploaded_metrics_are_published_when_done(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    sha = head(emulator, pr)
    comment = say(bot, pr, "/retrain epochs=50", "ada")

    [workflow] = semaphore.workflows
    run_id = workflow.parameters["MLGATE_RUN_ID"]
    assert workflow.parameters == {
        "MLGATE_PARAM_MODEL": "xgboost",
        "MLGATE_PARAM_EPOCHS": "50",
        "MLGATE_RUN_ID": run_id,
        "MLGATE_REPO": REPO,
        "MLGATE_PR": str(pr),
        "MLGATE_SHA": sha,
    }
    assert (workflow.project_id, workflow.reference, workflow.commit_sha) == (
        PROJECT,
        f"refs/pull/{pr}",
        sha,
    )
    assert workflow.pipeline_file == ".semaphore/retrain.yml"
    link = f"{semaphore.base_url}/workflows/{workflow.id}"
    check = quality(emulator, sha)
    assert (check["status"], check["details_url"]) == ("in_progress", link)
    assert (
        "Waiting for the Semaphore pipeline `.semaphore/retrain.yml`"
        in (check["output"]["summary"])
    )
    assert reactions(emulator, comment) == ["eyes"]  # not done until the pipeline is
    run, _ = find_run(bot.conn, workflow.initial_pipeline_id, workflow.id)
    assert run is not None
    assert (run.run_id, run.kind, run.requested_by, run.comment_id) == (
        run_id,
        "retrain",
        "ada",
        comment["id"],
    )
    assert (run.number, run.head_sha, run.workflow_id) == (pr, sha, workflow.id)

    upload(bot, sha, run_id)
    upload(bot, sha, "someone-else", {"accuracy": 0.1, "loss": 9.0})  # another run's: unused
    upload(bot, sha, run_id)  # the run's own upload, now the latest too: order is irrelevant
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    payload = semaphore.pipeline_done_payload(workflow.initial_pipeline_id)
    assert notify(bot, semaphore, payload) == 202

    data = report(emulator, pr)
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == UPLOADED["accuracy"]
    assert "Metrics after /retrain by @ada with model=xgboost epochs=50." in data["body"]
    check = quality(emulator, sha)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert check["details_url"] == link
    assert reactions(emulator, comment) == ["eyes", "rocket"]


def test_a_duplicate_or_a_promotions_notification_does_not_publish_again(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    say(bot, pr, "/evaluate", "alice")
    [workflow] = semaphore.workflows
    upload(bot, head(emulator, pr), workflow.parameters["MLGATE_RUN_ID"])
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    payload = semaphore.pipeline_done_payload(workflow.initial_pipeline_id)
    webhook_id = str(uuid.uuid4())
    assert notify(bot, semaphore, payload, webhook_id) == 202
    before = github_writes(emulator)

    assert notify(bot, semaphore, payload, webhook_id) == 200  # Semaphore's retry
    assert notify(bot, semaphore, payload) == 202  # a second notification of the same pipeline
    promotion = json.loads(json.dumps(payload))
    promotion["pipeline"] |= {"id": str(uuid.uuid4()), "yaml_file_name": "deploy.yml"}
    assert notify(bot, semaphore, promotion) == 202
    assert github_writes(emulator) == before


def test_a_failed_pipeline_fails_the_check_listing_its_failed_jobs(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    semaphore.blocks = {"Train": ["train"], "Evaluate": ["evaluate", "lint"]}
    comment = say(bot, pr, "/evaluate", "ada")
    [workflow] = semaphore.workflows
    assert workflow.pipeline_file == ".semaphore/evaluate.yml"
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "failed", failed_jobs=["evaluate"])
    notify(bot, semaphore, semaphore.pipeline_done_payload(workflow.initial_pipeline_id))

    check = quality(emulator, head(emulator, pr))
    assert check["conclusion"] == "failure"
    assert "block Evaluate: evaluate" in check["output"]["title"]
    assert "Train" not in check["output"]["title"]
    assert check["details_url"] == f"{semaphore.base_url}/workflows/{workflow.id}"
    assert "the Semaphore pipeline failed" in report(emulator, pr)["body"]
    assert reactions(emulator, comment) == ["eyes", "confused"]


def test_a_passed_pipeline_without_uploaded_metrics_fails_saying_how_to_upload(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "opened"))
    [workflow] = semaphore.workflows  # the author may write: the evaluation pipeline runs
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    notify(bot, semaphore, semaphore.pipeline_done_payload(workflow.initial_pipeline_id))

    check = quality(emulator, head(emulator, pr))
    run_id = workflow.parameters["MLGATE_RUN_ID"]
    assert check["conclusion"] == "failure"
    assert f"no metrics were uploaded for run `{run_id}`" in check["output"]["title"]
    assert "/api/v1/metrics?repo=octo/model" in check["output"]["summary"]


def test_passive_mode_publishes_a_pipeline_semaphore_ran_by_itself(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    sha = head(emulator, pr)
    # Passive mode knows the repository from the App's installation event, not from a run.
    installed = github_event(
        emulator,
        "installation",
        "created.payload",
        REPO,
        "octo",
        action="created",
        repositories=[{"full_name": REPO, "name": "model"}],
    )
    bot.deliver("installation", installed)
    with requests.Session() as session:
        client = SemaphoreClient(semaphore.url, semaphore.token, session=session)
        other = client.run_workflow(PROJECT, f"refs/pull/{pr}", sha, ".semaphore/semaphore.yml")
        ours = client.run_workflow(PROJECT, f"refs/pull/{pr}", sha, ".semaphore/evaluate.yml")
    upload(bot, sha, ours.workflow_id)
    for started in (other, ours):
        semaphore.finish_pipeline(started.pipeline_id, "passed")
    pull_request = {"number": str(pr), "head_sha": sha}

    notify(bot, semaphore, semaphore.pipeline_done_payload(other.pipeline_id))
    assert emulator.comments(REPO, pr) == []  # not the evaluation pipeline

    payload = semaphore.pipeline_done_payload(ours.pipeline_id, pull_request=pull_request)
    assert payload["revision"]["commit_sha"] != sha  # the merge commit Semaphore built
    notify(bot, semaphore, payload)
    data = report(emulator, pr)
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == UPLOADED["accuracy"]
    assert quality(emulator, sha)["conclusion"] == "success"


def test_an_untrusted_fork_pr_starts_no_workflow(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    emulator.fork_repo(REPO, "mallory")
    emulator.repo("mallory/model").commit("evil", {"params.yaml": "epochs: 1\n"})
    pull = emulator.open_pull_request(
        REPO, head="evil", base="main", user="mallory", head_repo="mallory/model"
    )
    number = int(pull["number"])
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    assert semaphore.workflows == []
    check = quality(emulator, head(emulator, number))
    assert check["conclusion"] == "neutral"
    assert "Evaluation waits for a maintainer's `/evaluate`" in report(emulator, number)["body"]


def test_a_superseded_head_does_not_publish_as_current(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, pr: int
) -> None:
    old = head(emulator, pr)
    say(bot, pr, "/evaluate", "alice")
    [first] = semaphore.workflows
    emulator.repo(REPO).commit("feature", {"README.md": "newer\n"}, "push")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "synchronize"))
    upload(bot, old, first.parameters["MLGATE_RUN_ID"])
    semaphore.finish_pipeline(first.initial_pipeline_id, "passed")
    notify(bot, semaphore, semaphore.pipeline_done_payload(first.initial_pipeline_id))

    assert quality(emulator, old)["conclusion"] == "cancelled"
    assert quality(emulator, head(emulator, pr))["status"] == "in_progress"
    assert not any("mlgate:report" in c["body"] for c in emulator.comments(REPO, pr))


def test_without_the_semaphore_api_the_check_says_so(
    bot: Bot, emulator: GitHubEmulator, monkeypatch: pytest.MonkeyPatch, pr: int
) -> None:
    monkeypatch.delenv("SEMAPHORE_API_URL")
    monkeypatch.delenv("SEMAPHORE_API_TOKEN")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "opened"))
    check = quality(emulator, head(emulator, pr))
    assert (check["conclusion"], check["output"]["title"]) == (
        "neutral",
        "Semaphore is not configured",
    )
    assert "SEMAPHORE_API_URL is not set" in check["output"]["summary"]


def test_real_notifications_give_the_pr_head_not_the_merge_commit_and_failed_jobs() -> None:
    pull_request = json.loads(
        (FIXTURES / "pipeline-done-pull-request-failed.zulip.json").read_text()
    )
    done = parse_pipeline_done(pull_request)
    assert done is not None
    assert (done.pr_number, done.head_sha) == (3, "6fd84f4c2aecae7b1e6ce516b634c220d4a3e3e4")
    assert (done.result, done.pipeline_file) == ("failed", ".semaphore/semaphore.yml")
    assert done.failed == (("Test", ("pytest",)),)

    stopped = parse_pipeline_done(
        json.loads((FIXTURES / "pipeline-done-stopped.docs.json").read_text())
    )
    assert stopped is not None
    assert (stopped.pr_number, stopped.head_sha, stopped.result) == (None, None, "stopped")
    assert describe_failure(stopped.result, stopped.failed) == (
        "the Semaphore pipeline stopped (block List & Test & Build: no job failed)"
    )
