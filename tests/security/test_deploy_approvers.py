"""Deploy approvals: nobody who wrote or pushed a PR's code approves shipping it, every time."""

from __future__ import annotations

from typing import Any

import pytest

from bot import sample
from bot.emulator import GitHubEmulator
from bot.state import audit
from tests.support import Bot, bot_replies, comment_event, github_event, pull_request_event

REPO = "octo/model"
# alice writes the PR; mia and ada may approve by permission, rita may not.
ROLES = {"alice": "maintain", "mia": "maintain", "ada": "admin", "rita": "read"}
SELF_APPROVAL = "authored or committed a commit of this pull request"


def config(allow_self_approval: bool = False) -> str:
    return sample.MLGATE_YML.format(source="git") + (
        "deploy:\n"
        "  run: python3 deploy.py\n"
        "  approvers: {permission: maintain}\n"
        f"  allow_self_approval: {str(allow_self_approval).lower()}\n"
        "  on: merge\n"
    )


def open_pr(bot: Bot, emulator: GitHubEmulator, allow_self_approval: bool = False) -> int:
    """alice's PR with better data; its quality gate passed."""
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    files[".github/mlgate.yml"] = config(allow_self_approval)
    emulator.create_repo(REPO, installation_id=42, files=files)
    for user, role in ROLES.items():
        emulator.set_permission(REPO, user, role)
    emulator.add_user("mia", email="mia@example.com", name="Mia")
    changed = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    emulator.repo(REPO).commit("feature", {n: changed[n] for n in names}, author="alice")
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


def synchronize(bot: Bot, emulator: GitHubEmulator, number: int) -> str:
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))
    return head(emulator, number)


def head(emulator: GitHubEmulator, number: int) -> str:
    return str(emulator.pull_request(REPO, number)["head"]["sha"])


def commit_as(emulator: GitHubEmulator, author: str, committer: tuple[str, str]) -> str:
    """A commit on the PR's branch written by `author` and committed by `committer` (name,
    address): what `git commit --amend` or a rebase by another person leaves."""
    git = emulator.repo(REPO).git
    parent = emulator.repo(REPO).head("feature")
    author_email = f"{emulator.user_json(author)['id']}+{author}@users.noreply.github.com"
    env = {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": author_email,
        "GIT_COMMITTER_NAME": committer[0],
        "GIT_COMMITTER_EMAIL": committer[1],
    }
    sha = git.git("commit-tree", f"{parent}^{{tree}}", "-p", parent, "-m", "Rebase", env=env)
    new = sha.decode().strip()
    emulator.repo(REPO).set_ref("refs/heads/feature", new, parent)
    return new


def say(bot: Bot, number: int, body: str, user: str) -> dict[str, Any]:
    event = comment_event(bot.emulator, REPO, number, body, user)
    assert bot.deliver("issue_comment", event) == 202
    comment: dict[str, Any] = event["comment"]
    return comment


def replies(emulator: GitHubEmulator, number: int) -> list[str]:
    return bot_replies(emulator, REPO, number)


def deploy_check(emulator: GitHubEmulator, sha: str) -> dict[str, Any]:
    [check] = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/deploy"]
    return check


def approval(bot: Bot, number: int, sha: str) -> str | None:
    entry = audit.decision(bot.conn, "deploy-approval", REPO, number, sha)
    return entry.user if entry is not None else None


def test_the_committer_of_one_commit_may_not_approve_and_a_clean_maintainer_may(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = open_pr(bot, emulator)
    # mia rebased alice's commit: alice is its author, mia its committer.
    commit_as(emulator, "alice", ("Mia", "mia@example.com"))
    sha = synchronize(bot, emulator, number)
    assert deploy_check(emulator, sha)["conclusion"] == "action_required"

    say(bot, number, "/deploy", "mia")
    [reply] = replies(emulator, number)
    assert reply == (
        f"> `/deploy`\n\n@mia, deploying {sha[:7]} was not approved: @mia {SELF_APPROVAL} and "
        "may not approve its deploy (allow_self_approval)."
    )
    assert approval(bot, number, sha) is None
    assert deploy_check(emulator, sha)["conclusion"] == "action_required"

    say(bot, number, "/deploy", "ada")
    assert approval(bot, number, sha) == "ada"
    assert deploy_check(emulator, sha)["output"]["title"] == "Approved by @ada — deploys on merge"


def test_someone_who_pushed_to_another_persons_pr_may_not_approve_its_deploy(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = open_pr(bot, emulator)
    emulator.repo(REPO).commit("feature", {"README.md": "tweak\n"}, author="mia")
    sha = synchronize(bot, emulator, number)
    pull = emulator.pull_request(REPO, number)
    assert pull["user"]["login"] == "alice"  # mia is no author of the PR itself
    click = github_event(
        emulator,
        "check_run",
        "requested_action.payload",
        REPO,
        "mia",
        check_run={
            "id": deploy_check(emulator, sha)["id"],
            "name": "mlgate/deploy",
            "head_sha": sha,
            "pull_requests": [{"number": number, "head": pull["head"], "base": pull["base"]}],
        },
        requested_action={"identifier": "approve-deploy"},
    )
    assert bot.deliver("check_run", click) == 202
    assert f"@mia {SELF_APPROVAL}" in replies(emulator, number)[-1]
    assert approval(bot, number, sha) is None
    assert f"@mia: @mia {SELF_APPROVAL}" in deploy_check(emulator, sha)["output"]["summary"]


def test_allow_self_approval_lets_a_contributor_approve(bot: Bot, emulator: GitHubEmulator) -> None:
    number = open_pr(bot, emulator, allow_self_approval=True)
    emulator.repo(REPO).commit("feature", {"README.md": "tweak\n"}, author="mia")
    sha = synchronize(bot, emulator, number)
    say(bot, number, "/deploy", "mia")
    assert approval(bot, number, sha) == "mia"


def test_an_approved_head_still_checks_every_later_approver(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    number = open_pr(bot, emulator)
    emulator.repo(REPO).commit("feature", {"README.md": "tweak\n"}, author="mia")
    sha = synchronize(bot, emulator, number)
    say(bot, number, "/deploy", "ada")
    assert approval(bot, number, sha) == "ada"

    rita = say(bot, number, "/deploy", "rita")
    mia = say(bot, number, "/deploy", "mia")
    *_, to_rita, to_mia = replies(emulator, number)
    assert "@rita, deploying" in to_rita and "@rita is not an approver" in to_rita
    assert f"@mia {SELF_APPROVAL}" in to_mia
    for comment in (rita, mia):
        assert [r["content"] for r in emulator.reactions(comment["id"])] == ["confused"]
    refused = [e.user for e in audit.entries(bot.conn, REPO) if e.kind == "deploy-refused"]
    assert refused == ["rita", "mia"]
    assert approval(bot, number, sha) == "ada"  # the first approval stands
    assert deploy_check(emulator, sha)["conclusion"] == "success"


@pytest.mark.parametrize(("first", "second"), [(10, 0), (10, 2)])
def test_the_deploy_check_lists_the_newest_ten_refusals_and_counts_the_rest(
    bot: Bot, emulator: GitHubEmulator, first: int, second: int
) -> None:
    number = open_pr(bot, emulator)
    sha = head(emulator, number)
    say(bot, number, "/deploy\n" * first, "rita")
    if second:
        say(bot, number, "/deploy\n" * second, "rita")
    summary = deploy_check(emulator, sha)["output"]["summary"]
    listed = summary.split("Refused approvals:\n", 1)[1].splitlines()
    line = "- @rita: @rita is not an approver (Users with maintain permission or more)"
    if second:
        assert listed == [line] * 10 + [f"- and {second} more"]
    else:
        assert listed == [line] * 10
    assert len(replies(emulator, number)) == (2 if second else 1)
