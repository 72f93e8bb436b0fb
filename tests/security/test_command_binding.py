"""Commands bound to the reviewed commit: a push after the comment, replays, edits, floods."""

from __future__ import annotations

import time
from typing import Any

from bot import sample
from bot.core.commands import help_text
from bot.core.report import MARKER
from bot.emulator import GitHubEmulator
from bot.state import audit
from tests.support import Bot, bot_replies, comment_event, github_event, pull_request_event

REPO = "octo/model"
# Printed by the fork's evaluate.py: in the comment's log tail only if its code ran.
RAN = "hostile evaluate.py ran"
CONFIG = """\
version: 1
metrics: {source: run}
evaluate: {run: python3 evaluate.py, timeout: 1m}
gates:
  accuracy: {min: 0.80}
"""


def fork_pr(bot: Bot, emulator: GitHubEmulator) -> int:
    """mallory's PR from a fork: its code runs only once a maintainer approves its head."""
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    emulator.create_repo(REPO, installation_id=42, files=files | {".github/mlgate.yml": CONFIG})
    emulator.set_permission(REPO, "ada", "admin")
    emulator.fork_repo(REPO, "mallory")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    emulator.repo("mallory/model").commit("feature", {"dvc.lock": better["dvc.lock"]})
    pull = emulator.open_pull_request(
        REPO, head="feature", base="main", user="mallory", head_repo="mallory/model"
    )
    number = int(pull["number"])
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


def head(emulator: GitHubEmulator, number: int) -> str:
    return str(emulator.pull_request(REPO, number)["head"]["sha"])


def next_second() -> None:
    """GitHub's times are whole seconds: wait until the clock shows a later one, so that what
    happens next is later than what happened before, as it is between a review and a push."""
    time.sleep(1.02 - time.time() % 1)


def push_hostile_code(bot: Bot, emulator: GitHubEmulator, number: int) -> str:
    evaluate = sample.EVALUATE_PY + f"\nprint({RAN!r})\n"
    emulator.repo("mallory/model").commit("feature", {"evaluate.py": evaluate}, "tweak")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    return head(emulator, number)


def deliver(bot: Bot, event: dict[str, Any]) -> None:
    assert bot.deliver("issue_comment", event) == 202


def replies(emulator: GitHubEmulator, number: int) -> list[str]:
    return bot_replies(emulator, REPO, number)


def report(emulator: GitHubEmulator, number: int) -> str:
    return str(
        next(c["body"] for c in emulator.comments(REPO, number) if c["body"].startswith(MARKER))
    )


def reactions(emulator: GitHubEmulator, comment: dict[str, Any]) -> list[str]:
    return [r["content"] for r in emulator.reactions(comment["id"])]


def quality(emulator: GitHubEmulator, sha: str) -> list[dict[str, Any]]:
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]


def test_a_comment_written_before_a_push_approves_nothing_and_names_the_new_head(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    reviewed = head(emulator, number)
    # ada reviews the head and writes /evaluate; GitHub sends the webhook at once...
    written = comment_event(emulator, REPO, number, "/evaluate", "ada")
    next_second()
    # ...but mallory pushes before mlgate handles it (a slow queue, or a lost race).
    pushed = push_hostile_code(bot, emulator, number)
    assert pushed != reviewed
    deliver(bot, written)

    [reply] = replies(emulator, number)
    assert reply == (
        "> `/evaluate`\n\n@ada, the PR changed after your comment; review "
        f"`{pushed[:7]}` and comment again. Nothing was run."
    )
    assert reactions(emulator, written["comment"]) == ["confused"]
    assert audit.decision(bot.conn, "approval", REPO, number, pushed) is None
    assert audit.decision(bot.conn, "approval", REPO, number, reviewed) is None
    assert [e.kind for e in audit.entries(bot.conn, REPO)] == ["refuse"]
    assert RAN not in report(emulator, number)
    assert [r["conclusion"] for r in quality(emulator, pushed)] == ["neutral"]


def test_evaluate_with_an_old_sha_is_refused_and_with_the_head_approves_only_it(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    reviewed = head(emulator, number)
    next_second()
    pushed = push_hostile_code(bot, emulator, number)

    old = comment_event(emulator, REPO, number, f"/evaluate {reviewed[:7]}", "ada")
    deliver(bot, old)
    [reply] = replies(emulator, number)
    assert reply == (
        f"> `/evaluate {reviewed[:7]}`\n\n@ada, `{reviewed[:7]}` is not the head of this pull "
        f"request; its head is `{pushed[:7]}`: review it and comment `/evaluate {pushed[:7]}`. "
        "Nothing was run."
    )
    assert reactions(emulator, old["comment"]) == ["confused"]
    assert audit.decision(bot.conn, "approval", REPO, number, pushed) is None
    assert RAN not in report(emulator, number)

    # ada reviews the new head and names it, in capitals and in full: that approves it.
    named = comment_event(emulator, REPO, number, f"/evaluate {pushed.upper()}", "ada")
    deliver(bot, named)
    assert reactions(emulator, named["comment"]) == ["eyes", "rocket"]
    approval = audit.decision(bot.conn, "approval", REPO, number, pushed)
    assert approval is not None and approval.user == "ada"
    assert RAN in report(emulator, number)
    assert len(replies(emulator, number)) == 1  # the approval itself says nothing


def test_the_same_comment_under_two_delivery_ids_acts_once(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    sha = head(emulator, number)
    event = comment_event(emulator, REPO, number, "/evaluate", "ada")
    assert emulator.send_webhook("issue_comment", event, guid="delivery-one") == 202
    deliver(bot, event)  # the very same body, under a new delivery id
    kinds = [e.kind for e in audit.entries(bot.conn, REPO)]
    assert kinds == ["approve-evaluate"]
    assert reactions(emulator, event["comment"]) == ["eyes", "rocket"]
    assert len(quality(emulator, sha)) == 2  # the opening's and the one /evaluate asked


def test_an_edited_comment_never_runs_commands(bot: Bot, emulator: GitHubEmulator) -> None:
    number = fork_pr(bot, emulator)
    event = comment_event(emulator, REPO, number, "Looks fine.", "ada")
    deliver(bot, event)
    edited = event | {
        "action": "edited",
        "comment": event["comment"] | {"body": "/evaluate"},
        "changes": {"body": {"from": "Looks fine."}},
    }
    deliver(bot, edited)
    assert audit.entries(bot.conn, REPO) == []
    assert replies(emulator, number) == []
    assert len(quality(emulator, head(emulator, number))) == 1


def test_twelve_help_lines_get_one_reply_with_the_help_once(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    event = comment_event(emulator, REPO, number, "/help\n" * 12, "mallory")
    deliver(bot, event)
    [reply] = replies(emulator, number)
    assert reply == (
        f"{help_text()}\n\n---\n\nOnly the first 10 command lines of a comment are read; "
        "2 more lines were ignored."
    )
    assert reactions(emulator, event["comment"]) == ["eyes"]


def test_a_64_kb_comment_of_commands_acts_ten_times_with_one_reply_and_few_requests(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    lines = ["/override fine", "/evaluate", "/retrain", "/deploy", "/help", "/nope"]
    written: list[str] = []
    while sum(len(line) + 1 for line in written) < 65536 - 20:
        written.append(lines[len(written) % len(lines)])
    body = "\n".join(written)
    count = len(written)
    emulator.set_permission(REPO, "alice", "write")
    event = comment_event(emulator, REPO, number, body, "alice")
    emulator.clear_requests()
    started = time.monotonic()
    deliver(bot, event)
    elapsed = time.monotonic() - started

    acted = [e for e in audit.entries(bot.conn, REPO) if e.user == "alice"]
    assert 0 < len(acted) <= 10
    [reply] = replies(emulator, number)
    assert reply.endswith(
        f"Only the first 10 command lines of a comment are read; {count - 10} more lines were "
        "ignored."
    )
    requests = emulator.requests
    # The comment's own job and the one evaluation it queued (20 when measured): tens of
    # calls, where reading every line would make thousands.
    assert len(requests) <= 30, [(r.method, r.path) for r in requests]
    # 👀, 😕 and 🚀 once each while the comment is read, and 🚀 when its run is done.
    assert sum(1 for r in requests if r.path.endswith("/reactions")) <= 4
    assert sum(1 for r in requests if r.method == "POST" and r.path.endswith("/comments")) == 1
    assert elapsed < 60


def test_a_button_on_an_old_head_is_refused_naming_the_head(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = fork_pr(bot, emulator)
    old = head(emulator, number)
    check = quality(emulator, old)[-1]
    pushed = push_hostile_code(bot, emulator, number)
    pull = emulator.pull_request(REPO, number)
    click = github_event(
        emulator,
        "check_run",
        "requested_action.payload",
        REPO,
        "ada",
        check_run={
            "id": check["id"],
            "name": "mlgate/quality",
            "head_sha": old,
            "pull_requests": [{"number": number, "head": pull["head"], "base": pull["base"]}],
        },
        requested_action={"identifier": "evaluate"},
    )
    assert bot.deliver("check_run", click) == 202
    [reply] = replies(emulator, number)
    assert reply == (
        f"> `Re-evaluate (button)`\n\n@ada, that button is on `{old[:7]}`, which is no longer "
        f"the head of this pull request; review `{pushed[:7]}` and use the button on its "
        "check. Nothing was run."
    )
    assert audit.decision(bot.conn, "approval", REPO, number, pushed) is None
    assert len(quality(emulator, old)) == 1
    assert RAN not in report(emulator, number)


def test_a_comment_on_a_head_mlgate_has_not_heard_of_yet_is_refused(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    """The push's own webhook is still queued behind the comment's (or was lost): the head
    the API shows appeared, as far as mlgate knows, when it first saw it. Even a push within
    the second of the comment is caught."""
    number = fork_pr(bot, emulator)
    written = comment_event(emulator, REPO, number, "/evaluate", "ada")
    evaluate = sample.EVALUATE_PY + f"\nprint({RAN!r})\n"
    emulator.repo("mallory/model").commit("feature", {"evaluate.py": evaluate}, "tweak")
    pushed = head(emulator, number)
    deliver(bot, written)  # no synchronize delivered
    assert "the PR changed after your comment" in replies(emulator, number)[0]
    assert audit.decision(bot.conn, "approval", REPO, number, pushed) is None
    # When the push's webhook comes, its time stands: a comment written since then acts.
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    later = comment_event(emulator, REPO, number, "/evaluate", "ada")
    deliver(bot, later)
    assert reactions(emulator, later["comment"]) == ["eyes", "rocket"]
    assert RAN in report(emulator, number)
