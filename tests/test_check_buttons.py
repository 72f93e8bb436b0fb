"""The "Re-evaluate" button and GitHub's re-run: permission checked with GitHub, then re-run."""

from __future__ import annotations

from typing import Any

import pytest

from bot import sample
from bot.emulator import GitHubEmulator
from tests.support import Bot, github_event, pull_request_event

REPO = "octo/model"


@pytest.fixture
def pr(bot: Bot, emulator: GitHubEmulator) -> int:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    for user, role in (("alice", "write"), ("rita", "read"), ("tom", "triage")):
        emulator.set_permission(REPO, user, role)
    files = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    emulator.repo(REPO).commit("feature", {n: files[n] for n in ("dvc.lock", "metrics.json")})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    return number


def quality_runs(emulator: GitHubEmulator, number: int) -> list[dict[str, Any]]:
    sha = emulator.pull_request(REPO, number)["head"]["sha"]
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]


def button_event(
    emulator: GitHubEmulator, number: int, clicker: str, identifier: str = "evaluate"
) -> dict[str, Any]:
    check = quality_runs(emulator, number)[-1]
    pull = emulator.pull_request(REPO, number)
    check_run = {
        "id": check["id"],
        "name": "mlgate/quality",
        "head_sha": pull["head"]["sha"],
        "status": "completed",
        "conclusion": check["conclusion"],
        "pull_requests": [{"number": number, "head": pull["head"], "base": pull["base"]}],
    }
    return github_event(
        emulator,
        "check_run",
        "requested_action.payload",
        REPO,
        clicker,
        check_run=check_run,
        requested_action={"identifier": identifier},
    )


def test_a_writer_clicking_re_evaluate_runs_a_new_evaluation(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    assert len(quality_runs(emulator, pr)) == 1
    bot.deliver("check_run", button_event(emulator, pr, "alice"))
    runs = quality_runs(emulator, pr)
    assert len(runs) == 2  # a completed check run is not reopened: re-runs are new ones
    assert runs[-1]["conclusion"] == "success"
    assert "Evaluated at the request of @alice." in emulator.comments(REPO, pr)[0]["body"]


@pytest.mark.parametrize("clicker", ["rita", "tom", "stranger"])
def test_a_user_without_write_cannot_re_evaluate(
    bot: Bot, emulator: GitHubEmulator, pr: int, clicker: str
) -> None:
    if clicker == "stranger":
        emulator.add_user(clicker)
    bot.deliver("check_run", button_event(emulator, pr, clicker))
    assert len(quality_runs(emulator, pr)) == 1
    reply = emulator.comments(REPO, pr)[-1]["body"]
    assert reply.startswith("> `Re-evaluate (button)`")
    assert f"@{clicker}, `/evaluate` needs write permission or more on this repository" in reply
    assert reply.endswith("Nothing was run.")


def test_retrain_button_without_retrain_configured_says_what_is_missing(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    bot.deliver("check_run", button_event(emulator, pr, "alice", "retrain"))
    assert len(quality_runs(emulator, pr)) == 1
    assert "`/retrain` needs `retrain.run`" in emulator.comments(REPO, pr)[-1]["body"]


def test_rerunning_the_check_suite_evaluates_again(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    pull = emulator.pull_request(REPO, pr)
    suite = {
        "head_sha": pull["head"]["sha"],
        "pull_requests": [{"number": pr, "head": pull["head"], "base": pull["base"]}],
    }
    event = github_event(
        emulator, "check_suite", "rerequested.payload", REPO, "alice", check_suite=suite
    )
    bot.deliver("check_suite", event)
    assert len(quality_runs(emulator, pr)) == 2
