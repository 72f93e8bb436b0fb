"""PR commands end to end: permission asked of GitHub, reactions, replies, runs and audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import sample
from bot.core.report import parse_data
from bot.emulator import GitHubEmulator
from bot.state import audit
from tests.support import Bot, bot_replies, comment_event, github_event, pull_request_event

REPO = "octo/model"
CONFIG = """\
version: 1
metrics: {source: run}
evaluate: {run: python3 evaluate.py, timeout: 1m}
retrain:
  runner: local
  run: python3 train.py
  parameters:
    model: {type: string, choices: [xgboost, random_forest], default: xgboost}
    epochs: {type: int, min: 1, max: 500, default: 30}
gates:
  accuracy: {min: 0.80}
"""
# Training records what it was given; evaluate.py reads MLGATE_PARAM_EPOCHS itself.
TRAIN = """\
import os
model, epochs = os.environ["MLGATE_PARAM_MODEL"], os.environ["MLGATE_PARAM_EPOCHS"]
print("trained", model, "for", epochs, "epochs")
"""
ROLES = {"ada": "admin", "alice": "write", "rita": "read"}  # "nobody" is no collaborator


@pytest.fixture
def pr(bot: Bot, emulator: GitHubEmulator) -> int:
    """alice's PR, opened as GitHub tells mlgate: comments come after its head appeared."""
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    files |= {".github/mlgate.yml": CONFIG, "train.py": TRAIN}
    emulator.create_repo(REPO, installation_id=42, files=files)
    for user, role in ROLES.items():
        emulator.set_permission(REPO, user, role)
    emulator.add_user("nobody")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo(REPO).commit("feature", {n: better[n] for n in ("dvc.lock", "data/features.csv")})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


def say(bot: Bot, number: int, body: str, user: str) -> dict[str, Any]:
    """Comment on the PR as `user` and let the bot handle it; the comment as it ends up."""
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.deliver("issue_comment", event) == 202
    comment: dict[str, Any] = event["comment"]
    return comment


def reactions(emulator: GitHubEmulator, comment: dict[str, Any]) -> list[str]:
    return [r["content"] for r in emulator.reactions(comment["id"])]


def replies(emulator: GitHubEmulator, number: int) -> list[str]:
    return bot_replies(emulator, REPO, number)


def report(emulator: GitHubEmulator, number: int) -> dict[str, Any]:
    body = next(c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"])
    data = parse_data(body)
    assert data is not None
    return data | {"body": body}


def quality_runs(emulator: GitHubEmulator, number: int) -> list[dict[str, Any]]:
    sha = emulator.pull_request(REPO, number)["head"]["sha"]
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]


def test_a_maintainer_retrains_with_parameters_and_the_report_updates(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    comment = say(bot, pr, "/retrain model=xgboost epochs=50", "ada")
    data = report(emulator, pr)
    assert "Metrics after /retrain by @ada with model=xgboost epochs=50." in data["body"]
    assert "trained xgboost for 50 epochs" in data["body"]
    expected = sample.evaluate(sample.BETTER_DATA, {"epochs": 50, "learning_rate": 0.1})
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == expected["accuracy"]
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    assert quality_runs(emulator, pr)[-1]["conclusion"] == "success"
    [entry] = audit.entries(bot.conn, REPO)
    assert (entry.kind, entry.user, entry.detail) == ("retrain", "ada", "model=xgboost epochs=50")


@pytest.mark.parametrize("command", ["/evaluate", "/retrain epochs=5", "/override known drift"])
@pytest.mark.parametrize(
    ("user", "allowed"), [("ada", True), ("alice", True), ("rita", False), ("nobody", False)]
)
def test_permission_matrix_is_asked_of_github(
    bot: Bot, emulator: GitHubEmulator, pr: int, command: str, user: str, allowed: bool
) -> None:
    comment = say(bot, pr, command, user)
    if allowed:
        assert reactions(emulator, comment)[0] == "eyes"
        assert not any("Nothing was run" in r for r in replies(emulator, pr))
    else:
        assert reactions(emulator, comment) == ["confused"]
        [reply] = replies(emulator, pr)
        name = command.split()[0]
        assert f"@{user}, `{name}` needs write permission or more on this repository" in reply
        assert "Nothing was run." in reply
        assert len(quality_runs(emulator, pr)) == 1  # the opening's only
        assert audit.entries(bot.conn, REPO)[-1].kind == "refuse"


def test_bad_retrain_parameters_are_named_and_nothing_runs(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    comment = say(bot, pr, "/retrain epochs=1000 optimizer=adam", "alice")
    [reply] = replies(emulator, pr)
    assert "epochs" in reply and "500" in reply
    assert "optimizer" in reply and "model" in reply  # unknown key; what is accepted
    assert reactions(emulator, comment) == ["confused"]
    assert len(quality_runs(emulator, pr)) == 1  # the opening's only


def test_help_and_a_did_you_mean_for_unknown_commands(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say(bot, pr, "/help", "nobody")
    say(bot, pr, "/retrian epochs=5", "alice")
    help_reply, unknown = replies(emulator, pr)
    assert "| `/retrain [key=value ...]` |" in help_reply
    assert "`epochs`" in help_reply or "epochs" in help_reply
    assert unknown.startswith("Unknown command `/retrian`: did you mean `/retrain`?")


def test_a_comment_gets_one_reply_that_gathers_its_commands_answers(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    comment = say(bot, pr, "/help\n/retrian epochs=5", "alice")
    [reply] = replies(emulator, pr)
    help_part, unknown = reply.split("\n\n---\n\n")
    assert "| `/retrain [key=value ...]` |" in help_part
    assert unknown.startswith("Unknown command `/retrian`: did you mean `/retrain`?")
    assert reactions(emulator, comment) == ["eyes", "confused"]


def test_commands_in_code_blocks_quotes_edits_and_by_bots_are_ignored(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    say(bot, pr, "Try this:\n```\n/evaluate\n```\n> /retrain epochs=9", "alice")
    edited = comment_event(emulator, REPO, pr, "/evaluate", "alice") | {"action": "edited"}
    bot.deliver("issue_comment", edited)
    by_bot = comment_event(emulator, REPO, pr, "/evaluate", "alice")
    by_bot["sender"] = by_bot["sender"] | {"type": "Bot"}
    bot.deliver("issue_comment", by_bot)
    assert len(quality_runs(emulator, pr)) == 1  # the opening's only
    assert replies(emulator, pr) == []


def test_fork_code_runs_only_after_evaluate_and_only_for_that_commit(
    bot: Bot, emulator: GitHubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The canary is a file outside the checkout, which the sandbox would not let the code
    # write (tests/security shows that): this test is about when code runs, not where.
    monkeypatch.setenv("MLGATE_SANDBOX", "none")
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    emulator.create_repo(REPO, installation_id=42, files=files | {".github/mlgate.yml": CONFIG})
    emulator.set_permission(REPO, "ada", "admin")
    canary = tmp_path / "ran"
    evaluate = sample.EVALUATE_PY + f"\nopen({str(canary)!r}, 'a').write('x')\n"
    emulator.fork_repo(REPO, "mallory")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo("mallory/model").commit(
        "feature", {"evaluate.py": evaluate, "dvc.lock": better["dvc.lock"]}
    )
    pull = emulator.open_pull_request(
        REPO, head="feature", base="main", user="mallory", head_repo="mallory/model"
    )
    number = int(pull["number"])
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    assert not canary.exists()

    comment = say(bot, number, "/evaluate", "ada")
    assert canary.read_text() == "x"
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    body = report(emulator, number)["body"]
    assert f"@ada approved running this PR's code at {pull['head']['sha'][:7]}" in body

    emulator.repo("mallory/model").commit("feature", {"README.md": "more\n"}, "push")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    assert canary.read_text() == "x"  # the new commit did not run
    assert quality_runs(emulator, number)[-1]["conclusion"] == "neutral"


def test_override_turns_the_gate_green_with_the_reason_and_is_audited(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    worse = sample.files(sample.WORSE_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo(REPO).commit("feature", {"data/features.csv": worse["data/features.csv"]})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "synchronize"))
    assert quality_runs(emulator, pr)[-1]["conclusion"] == "failure"

    comment = say(bot, pr, "/override vendor relabelling, accepted by the ML lead", "alice")
    check = quality_runs(emulator, pr)[-1]
    assert check["conclusion"] == "success"
    assert check["output"]["title"] == (
        "Overridden by @alice: vendor relabelling, accepted by the ML lead"
    )
    assert "overridden" in report(emulator, pr)["body"]
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    [entry] = audit.entries(bot.conn, REPO)
    assert (entry.kind, entry.user) == ("override", "alice")


def test_override_needs_a_reason(bot: Bot, emulator: GitHubEmulator, pr: int) -> None:
    comment = say(bot, pr, "/override", "alice")
    assert reactions(emulator, comment) == ["confused"]
    assert "reason" in replies(emulator, pr)[0]


def test_two_commands_in_a_row_queue_and_both_finish(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    first = comment_event(emulator, REPO, pr, "/evaluate", "alice")
    second = comment_event(emulator, REPO, pr, "/retrain epochs=40", "alice")
    emulator.send_webhook("issue_comment", first)
    bot.deliver("issue_comment", second)
    assert reactions(emulator, first["comment"]) == ["eyes", "rocket"]
    assert reactions(emulator, second["comment"]) == ["eyes", "rocket"]
    assert len(quality_runs(emulator, pr)) == 3  # the opening's, then one per command
    assert "after /retrain by @alice with model=xgboost epochs=40" in report(emulator, pr)["body"]


def test_deploy_is_checked_against_the_approvers(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    comment = say(bot, pr, "/deploy", "alice")
    assert "configures no deployment" in replies(emulator, pr)[0]
    assert reactions(emulator, comment) == ["confused"]


def test_the_retrain_button_retrains_with_the_default_parameters(
    bot: Bot, emulator: GitHubEmulator, pr: int
) -> None:
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "opened"))
    check = quality_runs(emulator, pr)[-1]
    pull = emulator.pull_request(REPO, pr)
    check_run = {
        "id": check["id"],
        "name": "mlgate/quality",
        "head_sha": pull["head"]["sha"],
        "pull_requests": [{"number": pr, "head": pull["head"], "base": pull["base"]}],
    }
    click = github_event(
        emulator,
        "check_run",
        "requested_action.payload",
        REPO,
        "alice",
        check_run=check_run,
        requested_action={"identifier": "retrain"},
    )
    bot.deliver("check_run", click)
    body = report(emulator, pr)["body"]
    assert "Metrics after /retrain by @alice with model=xgboost epochs=30." in body
    assert "trained xgboost for 30 epochs" in body


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("ada", "@ada approved deploying"),
        ("alice", "the author of a pull request may not approve its deploy"),
        ("rita", "@rita is not an approver"),
    ],
)
def test_deploy_approvers_by_permission_are_checked(
    bot: Bot, emulator: GitHubEmulator, pr: int, user: str, expected: str
) -> None:
    deploy = "deploy:\n  promotion: Deploy to production\n  approvers: {permission: maintain}\n"
    emulator.repo(REPO).commit("main", {".github/mlgate.yml": CONFIG + deploy})
    emulator.repo(REPO).commit("feature", {"README.md": "sync with main\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, pr, "synchronize"))
    say(bot, pr, "/deploy", user)
    [reply] = replies(emulator, pr)
    assert expected in reply
