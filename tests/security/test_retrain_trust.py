"""mlgate's own retrain PR runs like the default branch it was made from; nothing else borrows
that trust: not another bot's PR, not a look-alike login, not a commit pushed on top."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.pr_facts import PullRequest
from bot.emulator import GitHubEmulator
from bot.github.github_client import GitHubClient
from bot.runs.context import Context
from bot.runs.evaluation import author_trusted, own_retrain
from bot.settings import Settings
from tests.support import Bot, pull_request_event
from tests.test_retrain_loop import (
    INSTALLATION,
    REPO,
    TRAIN_PY,
    images_dvc,
    only_pull,
    push_data,
    trained,
)

# The PR's evaluation runs repository code (`metrics.source: run`): train.py writes the
# metrics file it reads.
CONFIG = """\
version: 1
metrics: {source: run}
evaluate: {run: python3 train.py, timeout: 1m}
retrain:
  run: python3 train.py
  on_data: true
  outputs: [metrics.json, "models/*.dvc"]
"""
WAITS = "Evaluation waits for a maintainer's `/evaluate`"


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(
        INSTALLATION,
        "octo",
        permissions={**emulator.installation_permissions, "contents": "write"},
    )
    files = {
        ".github/mlgate.yml": CONFIG,
        "train.py": TRAIN_PY,
        "data/images.dvc": images_dvc(100),
        **trained(100),
    }
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    return REPO


def client(bot: Bot) -> GitHubClient:
    return Context(settings=Settings.from_env(), redis=bot.conn).github.client(INSTALLATION)


def facts(emulator: GitHubEmulator, number: int) -> PullRequest:
    return PullRequest.from_api(emulator.pull_request(REPO, number), emulator.repository(REPO))


def open_as(emulator: GitHubEmulator, login: str, sha: str, branch: str) -> int:
    """`login` opens a PR of a branch of the repository at `sha` (whoever may push there)."""
    emulator.add_user(login, "Bot" if login.endswith("[bot]") else "User")
    emulator.repo(REPO).create_branch(branch, sha)
    pull = emulator.open_pull_request(REPO, head=branch, base="main", user=login)
    return int(pull["number"])


def comment(emulator: GitHubEmulator, number: int) -> str:
    bodies = [c["body"] for c in emulator.comments(REPO, number) if "mlgate:report" in c["body"]]
    assert len(bodies) == 1
    return str(bodies[0])


def evaluate(bot: Bot, number: int) -> dict[str, Any]:
    assert bot.deliver("pull_request", pull_request_event(bot.emulator, REPO, number, "opened"))
    runs = bot.emulator.check_runs(REPO, bot.emulator.pull_request(REPO, number)["head"]["sha"])
    return [r for r in runs if r["name"] == "mlgate/quality"][-1]


def test_the_apps_own_retrain_pr_is_trusted_by_its_commit_not_by_a_permission(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push_data(bot, emulator, images_dvc(120))
    pull = only_pull(emulator)
    gh = client(bot)
    pr = facts(emulator, pull["number"])
    assert pr.author == emulator.bot_login

    assert own_retrain(gh, bot.conn, pr)
    assert author_trusted(gh, pr, bot.conn)
    # The App's bot holds no role on the repository: only the retrain line vouches for it.
    assert not author_trusted(gh, pr)

    check = evaluate(bot, pull["number"])
    assert check["conclusion"] == "success"
    assert WAITS not in comment(emulator, pull["number"])


def test_another_bots_pr_of_the_very_same_commit_is_not_the_apps_own(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push_data(bot, emulator, images_dvc(120))
    head = only_pull(emulator)["head"]["sha"]
    gh = client(bot)

    logins = ("evil[bot]", f"x{emulator.bot_login}", emulator.bot_login.removesuffix("[bot]"))
    numbers = []
    for index, login in enumerate(logins):
        number = open_as(emulator, login, head, f"mlgate/retrain-forged{index}")
        numbers.append(number)
        pr = facts(emulator, number)
        assert pr.head_sha == head
        assert not own_retrain(gh, bot.conn, pr), login
        assert not author_trusted(gh, pr, bot.conn), login

    # evil[bot]'s PR runs nothing before a maintainer's /evaluate, though its code is ours.
    evaluate(bot, numbers[0])
    assert WAITS in comment(emulator, numbers[0])


def test_a_commit_pushed_on_top_of_the_retrain_pr_loses_the_trust(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push_data(bot, emulator, images_dvc(120))
    pull = only_pull(emulator)
    emulator.repo(REPO).commit(
        pull["head"]["ref"], {"train.py": "print('anything')\n"}, "Sneak in", author="mallory"
    )
    gh = client(bot)
    pr = facts(emulator, pull["number"])
    assert pr.author == emulator.bot_login and pr.head_sha != pull["head"]["sha"]

    assert not own_retrain(gh, bot.conn, pr)
    assert not author_trusted(gh, pr, bot.conn)
    evaluate(bot, pull["number"])
    assert WAITS in comment(emulator, pull["number"])
