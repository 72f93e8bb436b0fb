"""Deployment approval end to end: mlgate/deploy, approvers, and one Semaphore promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import sample
from bot.emulator import GitHubEmulator
from bot.emulator.semaphore_emulator import SemaphoreEmulator
from bot.state import audit
from tests.support import SEMAPHORE_PROJECT as PROJECT
from tests.support import (
    SEMAPHORE_REPO,
    SEMAPHORE_SECRET,
    Bot,
    bot_replies,
    comment_event,
    github_event,
    pull_request_event,
    run_jobs,
)

REPO = SEMAPHORE_REPO
pytestmark = pytest.mark.usefixtures("semaphore")
PROMOTION = "Deploy to production"
# alice writes the PRs; ada and mia may approve by permission, tom through his team.
ROLES = {"alice": "maintain", "ada": "admin", "mia": "maintain", "rita": "read", "tom": "write"}


def config(on: str = "merge") -> str:
    return sample.MLGATE_YML.format(source="git") + (
        "deploy:\n"
        f"  promotion: {PROMOTION}\n"
        "  approvers: {permission: maintain, teams: [ml-leads]}\n"
        "  allow_self_approval: false\n"
        f"  on: {on}\n"
    )


def open_pr(bot: Bot, emulator: GitHubEmulator, on: str = "merge", data: Any = None) -> int:
    """A PR by alice that changes the data; its evaluation has run."""
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    emulator.create_repo(REPO, installation_id=42, files=files | {".github/mlgate.yml": config(on)})
    for user, role in ROLES.items():
        emulator.set_permission(REPO, user, role)
    emulator.add_team_member("octo", "ml-leads", "tom")
    changed = sample.files(data or sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    emulator.repo(REPO).commit("feature", {n: changed[n] for n in names})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


def head(emulator: GitHubEmulator, number: int) -> str:
    return str(emulator.pull_request(REPO, number)["head"]["sha"])


def deploy_check(emulator: GitHubEmulator, sha: str) -> dict[str, Any]:
    runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/deploy"]
    assert len(runs) == 1, runs
    return runs[0]


def click(bot: Bot, number: int, user: str, sha: str | None = None) -> None:
    """`user` clicks "Approve deploy" on the mlgate/deploy check of `sha` (the head)."""
    emulator = bot.emulator
    pull = emulator.pull_request(REPO, number)
    sha = sha or pull["head"]["sha"]
    check_run = {
        "id": deploy_check(emulator, sha)["id"],
        "name": "mlgate/deploy",
        "head_sha": sha,
        "pull_requests": [{"number": number, "head": pull["head"], "base": pull["base"]}],
    }
    event = github_event(
        emulator,
        "check_run",
        "requested_action.payload",
        REPO,
        user,
        check_run=check_run,
        requested_action={"identifier": "approve-deploy"},
    )
    assert bot.deliver("check_run", event) == 202


def say(bot: Bot, number: int, body: str, user: str) -> dict[str, Any]:
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.deliver("issue_comment", event) == 202
    comment: dict[str, Any] = event["comment"]
    return comment


def notify(
    bot: Bot, semaphore: SemaphoreEmulator, pipeline_id: str, result: str = "passed"
) -> None:
    """The pipeline ends and Semaphore's signed notification reaches mlgate."""
    semaphore.finish_pipeline(pipeline_id, result)
    payload = semaphore.pipeline_done_payload(pipeline_id)
    answer = semaphore.deliver(f"{bot.url}/webhooks/semaphore", payload, SEMAPHORE_SECRET)
    assert answer.status_code == 202
    run_jobs(bot.conn)


def promotion_posts(semaphore: SemaphoreEmulator) -> int:
    return sum(1 for r in semaphore.requests if r.method == "POST" and "promotions" in r.path)


def statuses(emulator: GitHubEmulator, deployment: dict[str, Any]) -> list[str]:
    return [s["state"] for s in emulator.deployment_statuses(deployment["id"])]


def test_approved_on_the_pr_deploys_the_merge_commits_pipeline_once_merged(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator)
    sha = head(emulator, number)
    check = deploy_check(emulator, sha)
    assert (check["status"], check["conclusion"]) == ("completed", "action_required")
    [action] = check["actions"]
    assert (action["label"], action["identifier"]) == ("Approve deploy", "approve-deploy")
    assert len(action["description"]) <= 40

    click(bot, number, "mia")
    check = deploy_check(emulator, sha)
    assert check["conclusion"] == "success"
    assert check["output"]["title"] == "Approved by @mia — deploys on merge"
    assert check["actions"] == []
    assert semaphore.promotions == []

    merge_sha = emulator.close_pull_request(REPO, number, merged=True)
    assert merge_sha is not None
    closed = pull_request_event(emulator, REPO, number, "closed")
    assert bot.deliver("pull_request", closed) == 202
    assert semaphore.promotions == []  # the merge commit's pipeline has not run yet
    assert emulator.deployments(REPO) == []

    workflow = semaphore.run_workflow(PROJECT, "refs/heads/main", merge_sha)
    notify(bot, semaphore, workflow.initial_pipeline_id)
    [promotion] = semaphore.promotions
    assert (promotion.pipeline_id, promotion.name) == (workflow.initial_pipeline_id, PROMOTION)
    assert promotion_posts(semaphore) == 1
    [deployment] = emulator.deployments(REPO)
    assert deployment["sha"] == merge_sha
    assert statuses(emulator, deployment) == ["in_progress"]
    report = next(
        c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"]
    )
    assert "Audit: deploy by @mia" in report

    notify(bot, semaphore, promotion.promoted_pipeline_id)
    assert statuses(emulator, deployment) == ["in_progress", "success"]
    # A redelivered merge webhook does not deploy again.
    assert bot.deliver("pull_request", closed) in (200, 202)
    assert promotion_posts(semaphore) == 1
    assert len(emulator.deployments(REPO)) == 1
    kinds = [e.kind for e in audit.entries(bot.conn, REPO)]
    assert kinds == ["approve-deploy", "deploy"]


def test_on_approval_deploys_the_pr_heads_pipeline_once_it_is_done(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator, on="approval")
    sha = head(emulator, number)
    comment = say(bot, number, "/deploy", "ada")
    assert [r["content"] for r in emulator.reactions(comment["id"])] == ["eyes", "rocket"]
    assert deploy_check(emulator, sha)["output"]["title"] == "Approved by @ada — deployed"
    assert semaphore.promotions == []  # waiting for the head's pipeline

    workflow = semaphore.run_workflow(PROJECT, f"refs/pull/{number}", sha)
    notify(bot, semaphore, workflow.initial_pipeline_id)
    [promotion] = semaphore.promotions
    assert promotion.pipeline_id == workflow.initial_pipeline_id
    [deployment] = emulator.deployments(REPO)
    assert deployment["sha"] == sha
    notify(bot, semaphore, promotion.promoted_pipeline_id, "failed")
    assert statuses(emulator, deployment) == ["in_progress", "failure"]


def test_double_click_and_a_second_deploy_promote_once(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator, on="approval")
    sha = head(emulator, number)
    workflow = semaphore.run_workflow(PROJECT, f"refs/pull/{number}", sha)
    notify(bot, semaphore, workflow.initial_pipeline_id)

    click(bot, number, "ada")
    click(bot, number, "ada")
    say(bot, number, "/deploy", "mia")
    assert promotion_posts(semaphore) == 1
    assert len(semaphore.promotions) == 1
    assert len(emulator.deployments(REPO)) == 1
    assert deploy_check(emulator, sha)["conclusion"] == "success"


def test_a_team_member_may_approve(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator)
    click(bot, number, "tom")
    check = deploy_check(emulator, head(emulator, number))
    assert check["output"]["title"] == "Approved by @tom — deploys on merge"


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("alice", "the author of a pull request may not approve its deploy"),
        ("rita", "@rita is not an approver"),
    ],
)
def test_self_approval_and_a_read_user_are_refused(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, user: str, why: str
) -> None:
    number = open_pr(bot, emulator)
    sha = head(emulator, number)
    comment = say(bot, number, "/deploy", user)
    assert [r["content"] for r in emulator.reactions(comment["id"])] == ["confused"]
    check = deploy_check(emulator, sha)
    assert check["conclusion"] == "action_required"
    assert f"@{user}: {why}" in check["output"]["summary"]
    [reply] = bot_replies(emulator, REPO, number)
    assert f"@{user}, deploying {sha[:7]} was not approved: {why}" in reply
    entry = audit.entries(bot.conn, REPO)[-1]
    assert (entry.kind, entry.user) == ("deploy-refused", user)
    assert semaphore.promotions == []


def test_a_click_on_an_old_head_is_refused_as_stale(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator)
    old = head(emulator, number)
    emulator.repo(REPO).commit("feature", {"README.md": "more\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    click(bot, number, "ada", sha=old)
    assert "stale" in bot_replies(emulator, REPO, number)[-1]
    assert deploy_check(emulator, old)["conclusion"] == "action_required"
    assert audit.decision(bot.conn, "deploy-approval", REPO, number, old) is None
    assert audit.entries(bot.conn, REPO)[-1].kind == "deploy-refused"


def test_deploy_before_the_gate_passed_is_refused(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator, data=sample.WORSE_DATA)
    sha = head(emulator, number)
    check = deploy_check(emulator, sha)
    assert (check["conclusion"], check["output"]["title"]) == (
        "neutral",
        "Waiting for the quality gate",
    )
    say(bot, number, "/deploy", "ada")
    assert "the quality gate has not passed" in bot_replies(emulator, REPO, number)[-1]
    assert deploy_check(emulator, sha)["conclusion"] == "neutral"
    assert semaphore.promotions == []


def test_a_push_voids_the_approval_and_the_merge_deploys_nothing(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator
) -> None:
    number = open_pr(bot, emulator)
    click(bot, number, "mia")
    emulator.repo(REPO).commit("feature", {"README.md": "more\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    assert deploy_check(emulator, head(emulator, number))["conclusion"] == "action_required"

    merge_sha = emulator.close_pull_request(REPO, number, merged=True)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "closed"))
    workflow = semaphore.run_workflow(PROJECT, "refs/heads/main", merge_sha)
    notify(bot, semaphore, workflow.initial_pipeline_id)
    assert semaphore.promotions == []
    assert emulator.deployments(REPO) == []


@pytest.mark.parametrize("state", ["pending", None])
def test_a_writer_outside_the_team_or_not_yet_in_it_is_refused(
    bot: Bot, emulator: GitHubEmulator, semaphore: SemaphoreEmulator, state: str | None
) -> None:
    number = open_pr(bot, emulator)
    emulator.set_permission(REPO, "wes", "write")
    if state is not None:
        emulator.add_team_member("octo", "ml-leads", "wes", state=state)
    click(bot, number, "wes")
    assert "@wes is not an approver" in bot_replies(emulator, REPO, number)[-1]
    assert deploy_check(emulator, head(emulator, number))["conclusion"] == "action_required"


def test_deploy_run_deploys_the_approved_commit_on_a_worker(
    bot: Bot, emulator: GitHubEmulator, tmp_path: Path
) -> None:
    # The sandbox lets the command write nothing outside its checkout: it reports by exit code.
    deploy_py = (
        "import os, subprocess\n"
        "head = subprocess.check_output(['git', 'rev-parse', 'HEAD'], text=True).strip()\n"
        "ok = (os.environ['MLGATE_SHA'], os.environ['MLGATE_PARAM_APPROVED_BY']) == (head, 'ada')\n"
        "raise SystemExit(0 if ok else 3)\n"
    )
    number = open_pr(bot, emulator, on="approval")
    run_config = config("approval").replace(
        f"  promotion: {PROMOTION}\n", "  run: python3 deploy.py\n"
    )
    emulator.repo(REPO).commit("main", {".github/mlgate.yml": run_config})
    emulator.repo(REPO).commit("feature", {"deploy.py": deploy_py})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    sha = head(emulator, number)

    say(bot, number, "/deploy", "ada")
    [deployment] = emulator.deployments(REPO)
    assert deployment["sha"] == sha
    assert statuses(emulator, deployment) == ["in_progress", "success"]
    assert "the deploy command runs on a worker" in bot_replies(emulator, REPO, number)[-1]


def test_a_failing_deploy_run_marks_the_deployment_failed(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = open_pr(bot, emulator, on="approval")
    run_config = config("approval").replace(
        f"  promotion: {PROMOTION}\n", "  run: python3 deploy.py\n"
    )
    emulator.repo(REPO).commit("main", {".github/mlgate.yml": run_config})
    emulator.repo(REPO).commit("feature", {"deploy.py": "raise SystemExit(4)\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    say(bot, number, "/deploy", "ada")
    [deployment] = emulator.deployments(REPO)
    assert statuses(emulator, deployment) == ["in_progress", "failure"]


def test_approvals_and_refusals_show_in_the_sticky_comment(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = open_pr(bot, emulator, on="merge")
    sha = head(emulator, number)
    say(bot, number, "/deploy", "rita")
    say(bot, number, "/deploy", "ada")
    body = next(c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"])
    assert f"Audit: deploy-refused by @rita on {sha[:7]}" in body
    assert f"Audit: approve-deploy by @ada on {sha[:7]}" in body
