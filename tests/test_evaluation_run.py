"""`metrics.source: run`: trusted PRs run evaluate.py on a worker; untrusted code never runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import sample
from bot.core.report import parse_data
from bot.emulator import GitHubEmulator
from tests.support import Bot, pull_request_event

REPO = "octo/model"
INSTALLATION = 42

# An evaluate.py that also shows what it could see: a leak of the bot's secrets would land in
# the log tail, which the sticky comment shows.
LEAKY_EVALUATE = """\
import json, os
print("ENV", sorted(os.environ.items()))
json.dump({"accuracy": 0.91, "loss": 0.35}, open("metrics.json", "w"))
"""


def config(extra: str = "") -> str:
    return (
        "version: 1\nmetrics: {source: run}\n"
        "evaluate: {run: python3 evaluate.py, timeout: 1m" + extra + "}\n"
        "gates:\n  accuracy: {min: 0.80}\n"
    )


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(INSTALLATION, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    emulator.set_permission(REPO, "alice", "write")
    emulator.set_permission(REPO, "rita", "read")
    return REPO


def better_data() -> dict[str, str | bytes | None]:
    files = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    return {n: files[n] for n in ("data/images.dvc", "dvc.lock", "data/features.csv")}


def open_pr(
    emulator: GitHubEmulator,
    files: dict[str, str | bytes | None],
    user: str = "alice",
    head_repo: str | None = None,
) -> int:
    if head_repo is not None:
        emulator.fork_repo(REPO, head_repo.partition("/")[0])
        emulator.repo(head_repo).commit("feature", files, "change", author=user)
    else:
        emulator.repo(REPO).commit("feature", files, "change", author=user)
    pull = emulator.open_pull_request(
        REPO, head="feature", base="main", user=user, title="t", head_repo=head_repo
    )
    return int(pull["number"])


def quality(emulator: GitHubEmulator, number: int) -> dict[str, Any]:
    sha = emulator.pull_request(REPO, number)["head"]["sha"]
    runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]
    return runs[-1]


def test_a_trusted_pr_runs_evaluate_on_the_worker_and_reports_its_metrics(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    number = open_pr(emulator, better_data())
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    data = parse_data(body)
    assert data is not None
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == 0.9133  # computed, not committed
    assert "evaluated 300 rows" in body  # the folded log tail
    assert quality(emulator, number)["conclusion"] == "success"


def test_the_evaluation_sees_no_secret_of_the_bot(
    bot: Bot, emulator: GitHubEmulator, repo: str, github_env: dict[str, str]
) -> None:
    number = open_pr(emulator, better_data() | {"evaluate.py": LEAKY_EVALUATE})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    assert "ENV" in body
    for name in ("GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET", "REDIS_URL"):
        assert name not in body
    assert github_env["GITHUB_WEBHOOK_SECRET"] not in body
    assert "MLGATE_SHA" in body


@pytest.mark.parametrize("author", ["rita", "mallory"])
def test_code_of_an_untrusted_pr_never_runs(
    bot: Bot, emulator: GitHubEmulator, repo: str, author: str, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    evil = better_data() | {"evaluate.py": f"open({str(canary)!r}, 'w').write('ran')\n"}
    head_repo = "mallory/model" if author == "mallory" else None
    number = open_pr(emulator, evil, user=author, head_repo=head_repo)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))

    assert not canary.exists()
    check = quality(emulator, number)
    assert check["conclusion"] == "neutral"
    body = emulator.comments(REPO, number)[0]["body"]
    sha = emulator.pull_request(REPO, number)["head"]["sha"]
    assert f"Evaluation waits for a maintainer's `/evaluate` on {sha[:7]}" in body


def test_a_failing_command_fails_the_check_with_its_log(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    broken = better_data() | {"evaluate.py": "import sys\nprint('loading model')\nsys.exit(3)\n"}
    number = open_pr(emulator, broken)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    check = quality(emulator, number)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "Evaluation failed: `python3 evaluate.py` exited with 3"
    assert "loading model" in emulator.comments(REPO, number)[0]["body"]


def test_repeats_report_the_mean_and_spread(bot: Bot, emulator: GitHubEmulator, repo: str) -> None:
    jitter = """\
import json, pathlib
runs = pathlib.Path(".runs")
n = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(n + 1))
json.dump({"accuracy": [0.90, 0.92, 0.94][n % 3], "loss": 0.35}, open("metrics.json", "w"))
"""
    emulator.repo(REPO).commit("main", {".github/mlgate.yml": config(", repeats: 3")})
    number = open_pr(emulator, better_data() | {"evaluate.py": jitter})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    data = parse_data(body)
    assert data is not None
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == pytest.approx(0.92)
    assert "± 0.02 (n=3)" in body


def test_a_draft_pr_is_not_evaluated_until_ready(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    emulator.repo(REPO).commit("feature", better_data(), "wip", author="alice")
    pull = emulator.open_pull_request(
        REPO, head="feature", base="main", user="alice", title="wip", draft=True
    )
    number = int(pull["number"])
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    assert quality(emulator, number)["conclusion"] == "skipped"
    assert emulator.comments(REPO, number) == []


def test_without_a_recorded_baseline_the_merge_base_is_evaluated_and_cached(
    bot: Bot, emulator: GitHubEmulator, repo: str
) -> None:
    # The committed metrics of main are stale; only running evaluate.py gives 0.8708.
    stale = '{\n  "accuracy": 0.5,\n  "loss": 0.9\n}\n'
    merge_base = emulator.repo(REPO).commit("main", {"metrics.json": stale}, "stale metrics")
    number = open_pr(emulator, better_data())
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    data = parse_data(emulator.comments(REPO, number)[0]["body"])
    assert data is not None
    assert data["metrics"]["metrics.json"]["accuracy"]["old"] == 0.8708
    assert bot.conn.exists(f"mlgate:baseline:{REPO}:{merge_base}")


def test_a_trusted_run_sees_only_the_secrets_the_operator_allowed_and_they_are_redacted(
    bot: Bot, emulator: GitHubEmulator, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "registry-canary-8c1f")
    monkeypatch.setenv("OTHER_SECRET", "other-canary-77aa")
    monkeypatch.setenv("MLGATE_RUNNER_SECRETS", "MODEL_REGISTRY_TOKEN")
    show = """\
import json, os
print("registry", os.environ.get("MODEL_REGISTRY_TOKEN"), "other", os.environ.get("OTHER_SECRET"))
print("registry seen:", os.environ.get("MODEL_REGISTRY_TOKEN") == "registry-canary-8c1f")
json.dump({"accuracy": 0.91, "loss": 0.35}, open("metrics.json", "w"))
"""
    number = open_pr(emulator, better_data() | {"evaluate.py": show})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    body = emulator.comments(REPO, number)[0]["body"]
    assert "registry seen: True" in body
    assert "registry *** other None" in body
    assert "registry-canary-8c1f" not in body
