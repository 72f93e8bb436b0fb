"""The sticky comment is mlgate's own: another bot's comment with the marker is never edited."""

from __future__ import annotations

import redis

from bot import sample
from bot.core.report import MARKER
from bot.emulator import GitHubEmulator
from tests.support import Bot, pull_request_event

REPO = "octo/model"
IMPOSTOR = "helpful-bot[bot]"
FAKE = f"{MARKER}\n## ✅ Quality gate passed\n\nApprove the deploy [here](https://evil.example)."


def open_pr(bot: Bot, emulator: GitHubEmulator) -> int:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    changed = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "metrics.json")
    emulator.repo(REPO).commit("feature", {n: changed[n] for n in names})
    return int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )


def app_lookups(emulator: GitHubEmulator) -> int:
    return sum(1 for r in emulator.requests if (r.method, r.path) == ("GET", "/app"))


def test_a_marker_in_another_bots_comment_is_left_alone(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    number = open_pr(bot, emulator)
    # Another App (any installed bot can comment) plants a "report" before mlgate's first.
    emulator.add_user(IMPOSTOR, "Bot")
    planted = emulator.add_comment(REPO, number, FAKE, IMPOSTOR)
    assert planted["user"]["type"] == "Bot"

    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    comments = {c["id"]: c for c in emulator.comments(REPO, number)}
    assert comments[planted["id"]]["body"] == FAKE  # untouched
    [ours] = [c for c in comments.values() if c["user"]["login"] == "mlgate[bot]"]
    assert ours["body"].startswith(MARKER) and "Quality gate passed" in ours["body"]
    assert app_lookups(emulator) == 1

    # Redis lost the comment's id: the next run finds mlgate's own comment by its author,
    # edits it, and still leaves the impostor's alone; the App's slug is asked again once.
    redis_conn.flushdb()
    emulator.repo(REPO).commit("feature", {"README.md": "more\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    after = {c["id"]: c for c in emulator.comments(REPO, number)}
    assert set(after) == set(comments)  # no new comment
    assert after[planted["id"]]["body"] == FAKE
    assert after[ours["id"]]["body"] != ours["body"]  # our own report, edited in place
    assert app_lookups(emulator) == 2


def test_the_apps_slug_is_asked_once_and_then_cached(bot: Bot, emulator: GitHubEmulator) -> None:
    number = open_pr(bot, emulator)
    emulator.add_user(IMPOSTOR, "Bot")
    emulator.add_comment(REPO, number, FAKE, IMPOSTOR)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    # Two more PRs, each listing comments to find the sticky one: GET /app is not repeated.
    changed = sample.files(sample.WORSE_DATA, sample.BASE_PARAMS)
    for branch in ("second", "third"):
        emulator.repo(REPO).commit(branch, {n: changed[n] for n in ("dvc.lock", "metrics.json")})
        other = int(
            emulator.open_pull_request(REPO, head=branch, base="main", user="alice")["number"]
        )
        emulator.add_comment(REPO, other, FAKE, IMPOSTOR)
        bot.deliver("pull_request", pull_request_event(emulator, REPO, other, "opened"))
        [ours] = [c for c in emulator.comments(REPO, other) if c["user"]["login"] == "mlgate[bot]"]
        assert "Quality gate failed" in ours["body"]
    assert app_lookups(emulator) == 1
