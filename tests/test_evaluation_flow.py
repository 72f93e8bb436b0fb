"""A PR's whole evaluation against the emulator: webhook in, comment and checks out."""

from __future__ import annotations

from typing import Any

import pytest

from bot import sample
from bot.core.report import MARKER, parse_data
from bot.emulator import GitHubEmulator
from tests.support import Bot, github_event, pull_request_event

REPO = "octo/model"
INSTALLATION = 42


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(INSTALLATION, "octo")
    emulator.create_repo(
        REPO,
        installation_id=INSTALLATION,
        files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS),
    )
    emulator.set_permission(REPO, "alice", "write")
    return REPO


def open_pr(
    emulator: GitHubEmulator, files: dict[str, str | bytes | None], branch: str = "feature"
) -> int:
    emulator.repo(REPO).commit(branch, files, "change the data", author="alice")
    pull = emulator.open_pull_request(REPO, head=branch, base="main", user="alice", title="t")
    return int(pull["number"])


def data_change(version: sample.DataVersion) -> dict[str, str | bytes | None]:
    """What a PR that brings a new data version changes (DVC files and committed metrics)."""
    files = sample.files(version, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    return {name: files[name] for name in names}


def quality(emulator: GitHubEmulator, sha: str) -> dict[str, Any]:
    runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]
    assert runs, f"no mlgate/quality on {sha}"
    return runs[-1]


def test_improving_data_change_gets_one_comment_and_a_passing_gate(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202

    head = emulator.pull_request(REPO, number)["head"]["sha"]
    comments = emulator.comments(REPO, number)
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.startswith(MARKER)
    data = parse_data(body)
    assert data is not None
    assert data["head"] == head
    assert data["verdict"] == "passed"
    accuracy = data["metrics"]["metrics.json"]["accuracy"]
    assert (accuracy["old"], accuracy["new"]) == (0.8708, 0.9133)
    images = next(c for c in data["data"] if c["path"] == "data/images")
    assert (images["old"]["nfiles"], images["new"]["nfiles"]) == (1848, 1912)
    assert "1,848 → 1,912" in body

    check = quality(emulator, head)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert [a["identifier"] for a in check["actions"]] == ["evaluate", "retrain"]


def test_a_regressing_push_edits_the_same_comment_and_fails_the_gate(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    first = emulator.comments(REPO, number)[0]

    emulator.repo(REPO).commit("feature", data_change(sample.WORSE_DATA), "noisy labels")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))

    comments = emulator.comments(REPO, number)
    assert [c["id"] for c in comments] == [first["id"]]
    data = parse_data(comments[0]["body"])
    assert data is not None and data["verdict"] == "failed"
    head = emulator.pull_request(REPO, number)["head"]["sha"]
    check = quality(emulator, head)
    assert check["conclusion"] == "failure"
    annotated = {(a["path"], a["start_line"]) for a in check["annotations"]}
    assert ("metrics.json", 2) in annotated  # "accuracy" is on line 2 of metrics.json


def test_a_pr_that_changes_nothing_relevant_gets_a_skipped_check_and_no_comment(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, {"README.md": "# sample-model\n\nBetter docs.\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    head = emulator.pull_request(REPO, number)["head"]["sha"]
    assert emulator.comments(REPO, number) == []
    check = quality(emulator, head)
    assert check["conclusion"] == "skipped"
    assert "No changed file matches the triggers" in check["output"]["summary"]


def test_a_broken_config_on_the_default_branch_fails_mlgate_config_and_neutralises_quality(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    emulator.repo(REPO).commit(
        "main", {".github/mlgate.yml": "version: 1\ngates:\n  accuracy: {min: high}\n"}
    )
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    head = emulator.pull_request(REPO, number)["head"]["sha"]
    config = [r for r in emulator.check_runs(REPO, head) if r["name"] == "mlgate/config"]
    assert config[-1]["conclusion"] == "failure"
    assert (
        '.github/mlgate.yml:3 gates.accuracy.min: expected a number, got "high"'
        in (config[-1]["output"]["summary"])
    )
    check = quality(emulator, head)
    assert check["conclusion"] == "neutral"
    assert "configuration invalid, see mlgate/config" in check["output"]["summary"]
    assert emulator.comments(REPO, number) == []


def test_a_pr_that_breaks_the_config_gets_a_failing_mlgate_config_check(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, {".github/mlgate.yml": "version: 2\n"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    head = emulator.pull_request(REPO, number)["head"]["sha"]
    config = [r for r in emulator.check_runs(REPO, head) if r["name"] == "mlgate/config"]
    assert config[-1]["conclusion"] == "failure"
    assert ".github/mlgate.yml:1 version" in config[-1]["output"]["summary"]


def test_two_pushes_in_a_row_give_one_final_comment_for_the_newer_sha(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    first_head = emulator.pull_request(REPO, number)["head"]["sha"]
    emulator.send_webhook("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    emulator.repo(REPO).commit("feature", data_change(sample.WORSE_DATA), "noisy labels")
    second = pull_request_event(emulator, REPO, number, "synchronize")
    bot.deliver("pull_request", second)  # both webhooks in before any worker ran

    comments = emulator.comments(REPO, number)
    assert len(comments) == 1
    data = parse_data(comments[0]["body"])
    assert data is not None and data["head"] == second["pull_request"]["head"]["sha"]
    assert quality(emulator, first_head)["conclusion"] == "cancelled"


def test_default_branch_pushes_record_baselines_that_draw_the_trend(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    main = emulator.repo(REPO)
    for version in (sample.BASE_DATA, sample.BETTER_DATA):
        before = main.head("main")
        after = main.commit("main", data_change(version), "new data version")
        push = github_event(
            emulator,
            "push",
            "payload",
            REPO,
            "alice",
            ref="refs/heads/main",
            before=before,
            after=after,
            deleted=False,
            commits=[{"id": after, "added": [], "removed": [], "modified": ["dvc.lock"]}],
        )
        assert bot.deliver("push", push) == 202
    number = open_pr(emulator, data_change(sample.WORSE_DATA))
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    assert "xychart-beta" in body


def test_a_push_to_another_branch_records_no_baseline(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    push = github_event(emulator, "push", "payload", REPO, "alice", ref="refs/heads/feature")
    bot.deliver("push", push)
    assert not [k for k in bot.conn.keys("mlgate:baseline*")]


def test_a_warm_synchronize_reads_only_what_it_changed_in_at_most_eight_calls(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    # New metrics (a blob never seen), the same images.dvc as the last head (a blob read
    # then), dvc.lock removed.
    pushed = data_change(sample.WORSE_DATA) | {"dvc.lock": None}
    assert pushed["data/images.dvc"] == data_change(sample.BETTER_DATA)["data/images.dvc"]
    head = emulator.repo(REPO).commit("feature", pushed, "noisy labels, no lock")
    emulator.clear_requests()

    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "synchronize"))

    calls = [
        (r.method, r.path.removeprefix(f"/repos/{REPO}"), r.query.get("ref"))
        for r in emulator.requests
        if "/access_tokens" not in r.path
    ]
    # Only the new blob is read: dvc.yaml and params.yaml are the merge base's (cached), the
    # removed dvc.lock is known absent, images.dvc known by its blob sha.
    assert [(path, ref) for _, path, ref in calls if "/contents/" in path] == [
        ("/contents/metrics.json", head)
    ]
    assert len(calls) <= 8, calls
    assert quality(emulator, head)["conclusion"] == "failure"


def test_the_comparisons_own_notes_reach_the_comment(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    # A gate on a metric no metrics file holds: the comparison says where it looked.
    emulator.repo(REPO).commit(
        "main", {".github/mlgate.yml": "gates:\n  f1_macro: {min: 0.5}\n"}, "gate f1_macro"
    )
    number = open_pr(emulator, data_change(sample.BETTER_DATA))
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    assert "Gated `f1_macro` found in none of the metrics files read" in body
