"""`mlgate report`: the bot's comparison of two commits of a real local git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot import sample
from bot.cli import main
from bot.core.report import MARKER, parse_data

# What `dvc metrics diff main HEAD --json` (DVC 3.67) printed for BASE_DATA -> BETTER_DATA:
# `diff` is new - old, unrounded.
BETTER_DIFF: dict[str, Any] = {
    "metrics.json": {
        "accuracy": {"old": 0.8708, "new": 0.9133, "diff": 0.04249999999999998},
        "loss": {"old": 0.4419, "new": 0.3546, "diff": -0.08729999999999999},
    }
}
ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        # Whatever the developer's git config says, commits are made the same way.
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ
        | {
            "GIT_AUTHOR_NAME": "Alice",
            "GIT_AUTHOR_EMAIL": "alice@example.com",
            "GIT_COMMITTER_NAME": "Alice",
            "GIT_COMMITTER_EMAIL": "alice@example.com",
        },
    )
    return result.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", message)
    return git(repo, "rev-parse", "HEAD")


def data_change(version: sample.DataVersion) -> dict[str, str]:
    """What a branch that brings a new data version commits (DVC files and metrics)."""
    files = sample.files(version, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    return {name: files[name] for name in names}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The sample DVC repository committed on `main`, with `feature` checked out from it."""
    path = tmp_path / "model"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch", "main")
    commit(path, sample.files(sample.BASE_DATA, sample.BASE_PARAMS), "base")
    git(path, "checkout", "--quiet", "-b", "feature")
    return path


def report(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["report", "--repo", str(repo), *args])


def test_json_is_what_dvc_metrics_diff_prints_for_the_change(repo: Path) -> None:
    commit(repo, data_change(sample.BETTER_DATA), "better data")
    result = report(repo, "--base", "main", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == BETTER_DIFF
    # Piped, DVC prints the object on one line; so do we.
    assert result.stdout.count("\n") == 1


def test_json_all_also_lists_unchanged_metrics_with_a_zero_diff(repo: Path) -> None:
    commit(repo, {"metrics.json": '{"accuracy": 0.9133, "loss": 0.4419}\n'}, "accuracy only")
    changed = {"accuracy": {"old": 0.8708, "new": 0.9133, "diff": 0.04249999999999998}}

    assert json.loads(report(repo, "--base", "main", "--json").stdout) == {"metrics.json": changed}
    everything = report(repo, "--base", "main", "--json", "--all")
    assert json.loads(everything.stdout) == {
        "metrics.json": changed | {"loss": {"old": 0.4419, "new": 0.4419, "diff": 0.0}}
    }


def test_json_full_adds_gates_data_and_parameter_changes(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    params = {"epochs": 40, "learning_rate": 0.1}
    head = commit(repo, sample.files(sample.BETTER_DATA, params), "better data, more epochs")
    result = report(repo, "--base", "main", "--json", "--full")
    assert result.exit_code == 0, result.output
    full = json.loads(result.stdout)

    assert set(full) == {"base", "head", "verdict", "metrics", "gates", "data", "params"}
    assert (full["base"], full["head"], full["verdict"]) == (base, head, "passed")
    assert full["metrics"] == json.loads(report(repo, "--base", "main", "--json").stdout)
    assert {(g["metric"], g["file"], g["passed"]) for g in full["gates"]} == {
        ("accuracy", "metrics.json", True),
        ("loss", "metrics.json", True),
    }
    images = next(d for d in full["data"] if d["path"] == "data/images")
    assert images["change"] == "modified"
    assert (images["old"]["nfiles"], images["new"]["nfiles"]) == (1848, 1912)
    assert {"file": "params.yaml", "key": "epochs", "old": 30, "new": 40} in full["params"]


def test_a_failing_gate_exits_1_and_still_prints_the_report(repo: Path) -> None:
    commit(repo, data_change(sample.WORSE_DATA), "noisy labels")

    as_json = report(repo, "--base", "main", "--json", "--full")
    assert as_json.exit_code == 1
    full = json.loads(as_json.stdout)
    assert full["verdict"] == "failed"
    accuracy = next(g for g in full["gates"] if g["metric"] == "accuracy")
    assert not accuracy["passed"]
    assert "< min 0.8" in accuracy["reason"]

    as_markdown = report(repo, "--base", "main")
    assert as_markdown.exit_code == 1
    assert "Quality gate failed" in as_markdown.stdout


def test_markdown_is_the_comment_the_bot_would_post(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    head = commit(repo, data_change(sample.BETTER_DATA), "better data")
    result = report(repo, "--base", "main")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(MARKER)
    assert "1,848 → 1,912" in result.stdout
    data = parse_data(result.stdout)
    assert data is not None
    assert (data["base"], data["head"], data["verdict"]) == (base, head, "passed")
    accuracy = data["metrics"]["metrics.json"]["accuracy"]
    assert (accuracy["old"], accuracy["new"]) == (0.8708, 0.9133)


def test_uncommitted_changes_are_not_read(repo: Path) -> None:
    commit(repo, data_change(sample.BETTER_DATA), "better data")
    (repo / "metrics.json").write_text('{"accuracy": 0.1, "loss": 9.9}\n')
    result = report(repo, "--base", "main", "--json")
    assert json.loads(result.stdout) == BETTER_DIFF


def test_head_can_be_any_revision(repo: Path) -> None:
    commit(repo, data_change(sample.BETTER_DATA), "better data")
    git(repo, "checkout", "--quiet", "main")
    result = report(repo, "--base", "main", "--head", "feature", "--json")
    assert json.loads(result.stdout) == BETTER_DIFF


def test_the_configuration_is_read_at_the_base_so_a_branch_cannot_loosen_its_gates(
    repo: Path,
) -> None:
    loosened = sample.MLGATE_YML.format(source="git").replace("min: 0.80", "min: 0.10")
    commit(repo, data_change(sample.WORSE_DATA) | {".github/mlgate.yml": loosened}, "loosen")
    result = report(repo, "--base", "main", "--json", "--full")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verdict"] == "failed"


def test_without_a_configuration_metrics_are_compared_and_nothing_fails(repo: Path) -> None:
    git(repo, "rm", "--quiet", ".github/mlgate.yml")
    git(repo, "commit", "--quiet", "--message", "no config")
    git(repo, "branch", "--quiet", "--force", "main")
    commit(repo, data_change(sample.WORSE_DATA), "noisy labels")
    result = report(repo, "--base", "main", "--json", "--full")
    assert result.exit_code == 0, result.output
    full = json.loads(result.stdout)
    assert (full["verdict"], full["gates"]) == ("no_gates", [])
    assert full["metrics"]["metrics.json"]["accuracy"]["old"] == 0.8708


def test_a_branch_that_changes_nothing_relevant_is_reported_as_skipped(repo: Path) -> None:
    commit(repo, {"README.md": "# sample-model\n\nNow with a longer README.\n"}, "docs")
    markdown = report(repo, "--base", "main")
    assert markdown.exit_code == 0
    assert "Not evaluated" in markdown.stdout
    assert "No changed file matches the triggers (1 files changed)" in markdown.stdout
    full = report(repo, "--base", "main", "--json", "--full")
    assert (full.exit_code, json.loads(full.stdout)["verdict"]) == (0, "skipped")
    assert json.loads(report(repo, "--base", "main", "--json").stdout) == {}


def test_a_broken_metrics_file_reads_as_null_like_dvc_with_the_reason_on_stderr(
    repo: Path,
) -> None:
    commit(repo, {"metrics.json": '{"accuracy": 0.9,'}, "truncated metrics")
    as_json = report(repo, "--base", "main", "--json")
    # `dvc metrics diff main HEAD --json` (DVC 3.67): the file's values are null at HEAD.
    assert json.loads(as_json.stdout) == {
        "metrics.json": {
            "accuracy": {"old": 0.8708, "new": None},
            "loss": {"old": 0.4419, "new": None},
        }
    }
    assert "WARNING: HEAD: metrics.json: invalid JSON" in as_json.stderr
    assert "failed to load some metrics for following revisions: 'HEAD'." in as_json.stderr
    # The exit status is the gates': the sample gates accuracy and loss, now missing.
    assert as_json.exit_code == 1
    as_markdown = report(repo, "--base", "main")
    assert as_markdown.exit_code == 1
    assert "Quality gate failed" in as_markdown.stdout
    assert "metrics.json: invalid JSON" in as_markdown.stdout


def test_a_bad_revision_exits_2_naming_it_and_quoting_git(repo: Path) -> None:
    result = report(repo, "--base", "no-such-branch", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "bad revision 'no-such-branch'" in result.stderr
    assert "git: fatal:" in result.stderr


def test_a_revision_that_looks_like_an_option_is_only_a_name(repo: Path) -> None:
    result = report(repo, "--base", "--output=/tmp/x", "--json")
    assert result.exit_code == 2
    assert "bad revision '--output=/tmp/x'" in result.stderr


def test_revisions_resolve_as_git_rev_parse_resolves_them(repo: Path) -> None:
    better = commit(repo, data_change(sample.BETTER_DATA), "better data")
    git(repo, "tag", "--annotate", "--message", "release", "v1", "main")
    git(repo, "tag", "light", better)
    # An annotated tag peels to its commit; a short sha, a tag, HEAD~1 and a sha all name one.
    for base, head in (("v1", "light"), ("HEAD~1", better[:10]), ("main", better)):
        result = report(repo, "--base", base, "--head", head, "--json")
        assert (result.exit_code, json.loads(result.stdout)) == (0, BETTER_DIFF), (base, head)
    # A tree or a blob names no commit.
    for not_a_commit in ("main^{tree}", "main:metrics.json"):
        result = report(repo, "--base", not_a_commit, "--json")
        assert result.exit_code == 2
        assert f"bad revision {not_a_commit!r}" in result.stderr
        assert "fatal: Needed a single revision" in result.stderr


def test_a_revision_with_a_newline_is_refused_with_git_words(repo: Path) -> None:
    result = report(repo, "--base", "main\nHEAD", "--json")
    assert result.exit_code == 2
    assert "bad revision 'main\\nHEAD'" in result.stderr
    assert "git: fatal:" in result.stderr


def test_a_repository_without_commits_prints_what_dvc_prints(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "--initial-branch", "main")
    as_json = report(tmp_path, "--base", "main", "--json")
    assert (as_json.exit_code, as_json.stdout) == (0, "{}\n")
    # Only the plain --json is DVC's output; the others need a revision to compare.
    for other in (("--json", "--full"), ()):
        result = report(tmp_path, "--base", "main", *other)
        assert result.exit_code == 2
        assert "bad revision 'main'" in result.stderr


def test_outside_a_git_repository_exits_2_saying_so(tmp_path: Path) -> None:
    result = report(tmp_path, "--base", "main")
    assert result.exit_code == 2
    assert f"{tmp_path} is not in a git repository" in result.stderr


def test_an_invalid_configuration_exits_2_with_file_line_messages(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "main")
    commit(repo, {".github/mlgate.yml": "version: 1\nevaluate:\n  repeats: many\n"}, "broken")
    git(repo, "checkout", "--quiet", "feature")
    result = report(repo, "--base", "main", "--json")
    assert result.exit_code == 2
    assert "invalid configuration at main" in result.stderr
    assert ".github/mlgate.yml:3" in result.stderr
    assert "evaluate.repeats" in result.stderr


def test_full_and_all_without_json_are_usage_errors(repo: Path) -> None:
    assert report(repo, "--base", "main", "--full").exit_code == 2
    assert report(repo, "--base", "main", "--all").exit_code == 2


def test_help_says_what_is_read_and_what_the_exit_status_means() -> None:
    result = CliRunner().invoke(main, ["report", "--help"])
    text = " ".join(result.stdout.split())
    assert "uncommitted changes are not read" in text
    assert "1 when a quality gate fails" in text
    assert '"gates": [{"metric"' in text


def test_runs_as_a_real_process_in_the_checkout(repo: Path) -> None:
    commit(repo, data_change(sample.BETTER_DATA), "better data")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--base", "main", "--json"],
        cwd=repo,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == BETTER_DIFF


def test_slice_gates_name_the_worst_slice_and_fold_the_passing_ones(tmp_path: Path) -> None:
    path = tmp_path / "slices"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch", "main")
    config = "version: 1\nmetrics:\n  source: git\ngates:\n  per_class.*.f1: {min: 0.7}\n"

    def metrics(cat: float) -> str:
        f1 = {"cat": cat, "dog": 0.9, "bird": 0.72}
        return json.dumps({"per_class": {name: {"f1": v} for name, v in f1.items()}})

    commit(path, {".github/mlgate.yml": config, "metrics.json": metrics(0.8)}, "base")
    git(path, "checkout", "--quiet", "-b", "feature")
    commit(path, {"metrics.json": metrics(0.61)}, "worse on cats")

    as_json = report(path, "--base", "main", "--json", "--full")
    assert as_json.exit_code == 1, as_json.output
    gates = {g["metric"]: g["passed"] for g in json.loads(as_json.stdout)["gates"]}
    assert gates == {"per_class.cat.f1": False, "per_class.dog.f1": True, "per_class.bird.f1": True}

    shown = report(path, "--base", "main").stdout.replace("\\<", "<")
    # The slice's change is not hidden behind a "No metric changed": it is in the slices.
    assert "No other metric changed (slices: below)." in shown
    assert "No metric changed." not in shown
    assert "worst slice `per_class.cat.f1` 0.61 < min 0.7" in shown
    # The two passing slices fold away: inside a <details> after the verdict line.
    folded = shown[shown.index("worst slice") :]
    assert "<details>" in folded
    assert folded.index("<details>") < folded.index("per_class.dog.f1")

    commit(path, {"metrics.json": metrics(0.75)}, "cats again")
    fixed = report(path, "--base", "main", "--json", "--full")
    assert fixed.exit_code == 0, fixed.output
    assert all(g["passed"] for g in json.loads(fixed.stdout)["gates"])
