"""`mlgate ci` as a CI step: a job token, a real event file, a checkout, the emulator; no server.

The emulator plays github.com with the GitHub Actions App installed: its installation tokens
are what a workflow job gets as GITHUB_TOKEN, and they comment as github-actions[bot]. The
job's workspace is a real clone of the emulated repository, checked out as actions/checkout
does on a `pull_request` event (the merge commit, with the whole history).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml
from click.testing import CliRunner

from bot.cli import main
from bot.core.comparison import COMMON_METRICS_FILES, compare_revisions_metrics, metrics_paths
from bot.core.config import RepoConfig, parse_config
from bot.core.gates import Gate, GateResult
from bot.core.report import MARKER, SUMMARY_LIMIT, parse_data
from bot.core.setting_hints import summary_with_hints
from bot.emulator import GitHubEmulator
from bot.github.github_client import ProcessPacer
from tests.support import FIXTURES, github_event, pull_request_event

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "deploy" / "github-action" / "action.yml"
SEMAPHORE_BLOCK = ROOT / "deploy" / "semaphore" / "mlgate-ci.yml"
README = ROOT / "README.md"
APP_ID = "1"
REPO = "octo/model"
INSTALLATION = 7
# What `permissions: {contents: read, pull-requests: write, checks: write}` gives a job token.
JOB = {"contents": "read", "pull_requests": "write", "checks": "write", "metadata": "read"}
# A pull request from a fork: GitHub makes the job token read-only.
READ_ONLY = {
    "contents": "read",
    "pull_requests": "read",
    "checks": "read",
    "statuses": "read",
    "metadata": "read",
}
ACTIONS_BOT = "github-actions[bot]"
# A plain repository: no .github/mlgate.yml, no DVC, a metrics.json at the root.
PLAIN = {
    "README.md": "# model\n",
    "train.py": "print('training')\n",
    "metrics.json": '{\n  "accuracy": 0.90,\n  "loss": 0.30\n}\n',
}
GATES = "version: 1\ngates:\n  accuracy: {min: 0.85}\n"


def metrics(accuracy: float, loss: float = 0.3) -> dict[str, str]:
    return {"metrics.json": f'{{\n  "accuracy": {accuracy},\n  "loss": {loss}\n}}\n'}


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubEmulator]:
    """github.com where the GitHub Actions App is installed on octo/model (a plain repo)."""
    openapi = FIXTURES / "github" / "openapi-subset.json"
    with GitHubEmulator(
        app_id=APP_ID, openapi_path=openapi, root=tmp_path / "github", app_slug="github-actions"
    ) as emu:
        emu.add_installation(INSTALLATION, "octo")
        emu.create_repo(REPO, installation_id=INSTALLATION, files=PLAIN)
        yield emu


def job_token(emu: GitHubEmulator, permissions: Mapping[str, str] = JOB) -> str:
    """The GITHUB_TOKEN GitHub hands a job: an installation token of the Actions App."""
    now = int(time.time())
    claims = {"iat": now - 60, "exp": now + 540, "iss": APP_ID}
    app_jwt = jwt.encode(claims, emu.app_private_key_pem, algorithm="RS256")
    answer = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt}"},
        json={"permissions": dict(permissions)},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def open_pr(emu: GitHubEmulator, files: Mapping[str, str | None], branch: str = "feature") -> int:
    emu.repo(REPO).commit(branch, files, "change the model", author="alice")
    return int(emu.open_pull_request(REPO, head=branch, base="main", user="alice")["number"])


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def checkout(emu: GitHubEmulator, number: int, where: Path) -> Path:
    """What actions/checkout with `fetch-depth: 0` leaves for a `pull_request` event: every
    branch of the repository and, checked out, the merge of the PR's head into its base."""
    git(where.parent, "clone", "-q", str(emu.repo(REPO).path), where.name)
    git(where, "fetch", "-q", "origin", f"+refs/pull/{number}/head:refs/remotes/pull/{number}/head")
    git(where, "checkout", "-q", "--detach", "origin/main")
    name = ["-c", "user.name=runner", "-c", "user.email=runner@example.com"]
    git(where, *name, "merge", "-q", "--no-ff", "-m", "merge", f"pull/{number}/head")
    return where


def event_file(emu: GitHubEmulator, number: int, path: Path, action: str = "opened") -> Path:
    path.write_text(json.dumps(pull_request_event(emu, REPO, number, action)))
    return path


def actions_env(
    emu: GitHubEmulator, token: str, event: Path, tmp_path: Path, name: str = "pull_request"
) -> dict[str, str]:
    """The variables the runner sets for a step (and the job's token, as the README says)."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": emu.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
        "GITHUB_TOKEN": token,
        # Nothing listens there: the step needs no Redis (and no server).
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }


def mlgate_ci(env: Mapping[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "bot.cli", "ci", *args]
    return subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=60)


def step(
    emu: GitHubEmulator,
    number: int,
    tmp_path: Path,
    token: str,
    job: str,
    action: str = "opened",
) -> subprocess.CompletedProcess[str]:
    """One workflow job: a fresh checkout and event file, then `mlgate ci` in the workspace."""
    workspace = checkout(emu, number, tmp_path / job)
    event = event_file(emu, number, tmp_path / f"{job}-event.json", action)
    result = mlgate_ci(actions_env(emu, token, event, tmp_path), workspace)
    assert token not in result.stdout + result.stderr
    return result


def quality(emu: GitHubEmulator, sha: str) -> dict[str, Any]:
    runs = [r for r in emu.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]
    assert runs, f"no mlgate/quality on {sha}"
    return runs[-1]


def head(emu: GitHubEmulator, number: int) -> str:
    return str(emu.pull_request(REPO, number)["head"]["sha"])


# ------------------------------------------------------------------- GitHub Actions, end to end


def test_a_plain_repository_gets_one_sticky_comment_edited_in_place_with_a_job_token(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.92, 0.28)})
    token = job_token(github)

    first = step(github, number, tmp_path, token, "job1")
    assert first.returncode == 0, first.stderr
    [comment] = github.comments(REPO, number)
    assert comment["user"]["login"] == ACTIONS_BOT
    assert comment["body"].startswith(MARKER)
    data = parse_data(comment["body"])
    assert data is not None and data["verdict"] == "no_gates"
    assert data["head"] == head(github, number)
    accuracy = data["metrics"]["metrics.json"]["accuracy"]
    assert (accuracy["old"], accuracy["new"]) == (0.9, 0.92)
    assert accuracy["diff"] == pytest.approx(0.02)
    check = quality(github, head(github, number))
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert check["actions"] == []  # the App's buttons would call no server here
    assert check["details_url"] == f"https://github.com/{REPO}/actions/runs/4242"
    assert f"comment written: {comment['html_url']}" in first.stdout
    # The report is in the log with workflow commands off, and in the job summary.
    assert re.search(r"^::stop-commands::[0-9a-f]{32}$", first.stdout, re.M)
    assert (tmp_path / "step-summary.md").read_text().startswith(MARKER)

    github.repo(REPO).commit("feature", metrics(0.95, 0.25), "more epochs", author="alice")
    second = step(github, number, tmp_path, token, "job2", action="synchronize")
    assert second.returncode == 0, second.stderr
    [edited] = github.comments(REPO, number)
    assert edited["id"] == comment["id"]
    data = parse_data(edited["body"])
    first_data = parse_data(comment["body"])
    assert data is not None and first_data is not None
    assert data["head"] == head(github, number) != first_data["head"]
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == 0.95
    assert f"comment edited: {comment['html_url']}" in second.stdout


def test_a_failing_gate_fails_the_step_and_the_check_and_a_fix_passes_both(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    github.repo(REPO).commit("main", {".github/mlgate.yml": GATES}, "gates")
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.80)})
    token = job_token(github)

    failed = step(github, number, tmp_path, token, "job1")
    assert failed.returncode == 1, failed.stderr
    assert "::error::mlgate/quality: Quality gate failed: 1 of 1 gates" in failed.stdout
    check = quality(github, head(github, number))
    assert check["conclusion"] == "failure"
    assert [(a["path"], a["start_line"]) for a in check["annotations"]] == [("metrics.json", 2)]
    [comment] = github.comments(REPO, number)
    data = parse_data(comment["body"])
    assert data is not None and data["verdict"] == "failed"

    # At the threshold exactly, the gate holds.
    github.repo(REPO).commit("feature", metrics(0.85), "fix", author="alice")
    passed = step(github, number, tmp_path, token, "job2", action="synchronize")
    assert passed.returncode == 0, passed.stderr
    assert quality(github, head(github, number))["conclusion"] == "success"
    [comment] = github.comments(REPO, number)
    data = parse_data(comment["body"])
    assert data is not None and data["verdict"] == "passed"


def test_another_bots_comment_with_the_marker_is_left_alone(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.91)})
    github.add_user("mlgate[bot]", "Bot")
    theirs = github.add_comment(REPO, number, f"{MARKER}\nthe App's report", "mlgate[bot]")
    result = step(github, number, tmp_path, job_token(github), "job1")
    assert result.returncode == 0, result.stderr
    comments = github.comments(REPO, number)
    assert [(c["user"]["login"], c["body"]) for c in comments][0] == (
        "mlgate[bot]",
        f"{MARKER}\nthe App's report",
    )
    assert [c["user"]["login"] for c in comments] == ["mlgate[bot]", ACTIONS_BOT]
    assert comments[0]["id"] == theirs["id"]


def test_a_fork_prs_read_only_token_puts_the_report_in_the_log_and_exits_by_the_gate(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    github.repo(REPO).commit("main", {".github/mlgate.yml": GATES}, "gates")
    github.fork_repo(REPO, "mallory")
    fork = github.repo("mallory/model")
    fork.commit("feature", {"train.py": "print('v2')\n", **metrics(0.70)}, "x", author="mallory")
    pull = github.open_pull_request(REPO, head="mallory:feature", base="main", user="mallory")
    number = int(pull["number"])

    result = step(github, number, tmp_path, job_token(github, READ_ONLY), "job1")
    assert result.returncode == 1, result.stderr
    assert "comment not written: GitHub refused it (403)" in result.stdout
    assert "A pull request from a fork gets a read-only GITHUB_TOKEN" in result.stdout
    assert "check mlgate/quality: not written" in result.stdout
    assert "❌ **Quality gate failed**" in result.stdout
    assert github.comments(REPO, number) == []
    assert github.check_runs(REPO) == [] and github.statuses(REPO, head(github, number)) == []
    summary = (tmp_path / "step-summary.md").read_text()
    assert "❌ **Quality gate failed**" in summary


def test_without_checks_write_the_gate_is_a_commit_status(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    github.repo(REPO).commit("main", {".github/mlgate.yml": GATES}, "gates")
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.70)})
    permissions = {"contents": "read", "pull_requests": "write", "statuses": "write"}
    result = step(github, number, tmp_path, job_token(github, permissions), "job1")
    assert result.returncode == 1, result.stderr
    assert "GitHub refused a check run (403; the job needs `checks: write`)" in result.stdout
    assert github.check_runs(REPO) == []
    [status] = github.statuses(REPO, head(github, number))
    assert (status["context"], status["state"]) == ("mlgate/quality", "failure")
    assert status["description"] == "Quality gate failed: 1 of 1 gates"
    assert len(github.comments(REPO, number)) == 1


def test_a_pr_that_changes_nothing_relevant_gets_a_skipped_check_naming_the_setting(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"README.md": "# model\n\nBetter docs.\n"})
    result = step(github, number, tmp_path, job_token(github), "job1")
    assert result.returncode == 0, result.stderr
    assert github.comments(REPO, number) == []
    check = quality(github, head(github, number))
    assert (check["conclusion"], check["output"]["title"]) == ("skipped", "Nothing to evaluate")
    summary = check["output"]["summary"]
    assert summary.startswith("No changed file matches the triggers (1 files changed).")
    assert '```yaml\ntriggers:\n  code: ["src/**"]\n```' in summary
    assert '```yaml\ntriggers:\n  code: ["src/**"]\n```' in result.stdout


def test_a_gate_on_a_metric_in_no_file_names_metrics_files_with_an_example(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    gates = "version: 1\ngates:\n  f1: {min: 0.5}\n"
    github.repo(REPO).commit("main", {".github/mlgate.yml": gates}, "gates")
    number = open_pr(github, {"train.py": "print('v2')\n"})
    result = step(github, number, tmp_path, job_token(github), "job1")
    assert result.returncode == 1
    [comment] = github.comments(REPO, number)
    assert "name its file under metrics.files" in comment["body"]
    assert "`metrics: {files: [results/metrics.json]}`" in comment["body"]
    summary = quality(github, head(github, number))["output"]["summary"]
    assert summary.endswith("```yaml\nmetrics:\n  files: [results/metrics.json]\n```\n")


def test_an_event_that_is_not_a_pull_requests_reports_nothing(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    push = github_event(github, "push", "payload", REPO, "alice")
    event = tmp_path / "push.json"
    event.write_text(json.dumps(push))
    env = actions_env(github, job_token(github), event, tmp_path, name="push")
    result = mlgate_ci(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the push event is not a pull request's; nothing to report" in result.stdout
    assert github.check_runs(REPO) == []


# ------------------------------------------------------------- any other CI: --repo --pr --base


def test_any_ci_names_the_pr_and_the_base_and_mlgate_asks_github_for_the_head(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.93)})
    # A CI checkout of the PR branch: `main` exists only as origin/main.
    git(tmp_path, "clone", "-q", "--branch", "feature", str(github.repo(REPO).path), "ws")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GITHUB_TOKEN": job_token(github),
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    args = ["--repo", REPO, "--pr", str(number), "--base", "main", "--api-url", github.url]
    result = mlgate_ci(env, tmp_path / "ws", *args)
    assert result.returncode == 0, result.stderr
    assert "::" not in result.stdout  # no workflow commands outside GitHub Actions
    [comment] = github.comments(REPO, number)
    data = parse_data(comment["body"])
    assert data is not None and data["head"] == head(github, number)
    assert data["base"] == github.repo(REPO).git.branch_sha("main")
    assert quality(github, head(github, number))["conclusion"] == "success"


@pytest.fixture
def cli_env(github: GitHubEmulator, tmp_path: Path) -> dict[str, str | None]:
    """No event and no token: what a shell outside any CI has."""
    names = ("GITHUB_EVENT_PATH", "GITHUB_REPOSITORY", "GITHUB_ACTIONS", "GITHUB_TOKEN")
    return {name: None for name in names} | {"GITHUB_API_URL": github.url}


def test_usage_errors_exit_2_and_name_the_fix(
    github: GitHubEmulator, tmp_path: Path, cli_env: dict[str, str | None]
) -> None:
    runner = CliRunner()
    no_token = runner.invoke(main, ["ci", "--repo", REPO, "--pr", "1"], env=cli_env)
    assert no_token.exit_code == 2
    assert "no token: pass --token or set GITHUB_TOKEN" in no_token.output

    token = job_token(github)
    with_token = cli_env | {"GITHUB_TOKEN": token}
    no_pr = runner.invoke(main, ["ci"], env=with_token)
    assert no_pr.exit_code == 2
    assert "pass --repo OWNER/NAME --pr NUMBER (and --base)" in no_pr.output

    pr_only = runner.invoke(main, ["ci", "--pr", "1"], env=with_token)
    assert pr_only.exit_code == 2 and "--pr needs --repo OWNER/NAME" in pr_only.output

    wrong = ["ci", "--repo", REPO, "--pr", "1", "--token", "ghp_" + "x" * 36]
    bad = runner.invoke(main, wrong, env=cli_env)
    assert bad.exit_code == 2
    assert "401" in bad.output and "the token is wrong or expired" in bad.output
    assert "x" * 36 not in bad.output


def test_a_shallow_checkout_exits_2_asking_for_the_whole_history(
    github: GitHubEmulator, tmp_path: Path, cli_env: dict[str, str | None]
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.93)})
    url = (github.repo(REPO).path).as_uri()
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", url, "ws")
    event = event_file(github, number, tmp_path / "event.json")
    token = job_token(github)
    env = cli_env | {"GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": token}
    result = CliRunner().invoke(main, ["ci", "--checkout", str(tmp_path / "ws")], env=env)
    assert result.exit_code == 2
    assert "is not in this checkout" in result.output
    assert "`actions/checkout` and `fetch-depth: 0`" in result.output
    assert github.comments(REPO, number) == [] and github.check_runs(REPO) == []


# ----------------------------------------------------------- defaults on a plain repository


def reader(revisions: Mapping[str, Mapping[str, str]]) -> Any:
    def read(path: str, rev: str) -> bytes | None:
        text = revisions[rev].get(path)
        return None if text is None else text.encode()

    return read


@pytest.mark.parametrize("path", COMMON_METRICS_FILES)
def test_without_dvc_yaml_the_common_metrics_files_that_exist_are_read(path: str) -> None:
    text = "acc: {}\n" if path.endswith(".yaml") else '{{"acc": {}}}'
    revisions = {
        "b": {path: text.format(0.5), "other.json": '{"acc": 0.1}'},
        "h": {path: text.format(0.6), "other.json": '{"acc": 0.2}'},
    }
    read = reader(revisions)
    comparison = compare_revisions_metrics(read, RepoConfig(), [path], "b", "h")
    assert comparison.evaluation.old == {path: {"acc": 0.5}}
    assert comparison.evaluation.new == {path: {"acc": 0.6}}
    assert metrics_paths(read, RepoConfig(), "h") == [path]
    listed = compare_revisions_metrics(
        read, RepoConfig(), [path], "b", "h", list_files=lambda rev: sorted(revisions[rev])
    )
    assert listed.evaluation.new == {path: {"acc": 0.6}}


def test_a_dvc_yaml_alone_says_what_the_metrics_are_as_in_dvc() -> None:
    # DVC reads no metrics of a dvc.yaml that declares none: neither does mlgate.
    files = {"dvc.yaml": "stages:\n  train:\n    cmd: python train.py\n", "metrics.json": "{}"}
    read = reader({"b": files, "h": files})
    config = parse_config("version: 1\ngates:\n  acc: {min: 0.5}\n")
    evaluation = compare_revisions_metrics(read, config, [], "b", "h").evaluation
    assert evaluation.new == {} and metrics_paths(read, config, "h") == []
    [note] = evaluation.notes
    assert note == (
        "Gated `acc` found in no metrics file: `dvc.yaml` declares none (without a `dvc.yaml`, "
        "mlgate reads `metrics.json`, `metrics.yaml`, `eval/metrics.json`, "
        "`reports/metrics.json` where they exist). To read another file, add to "
        "`.github/mlgate.yml`: `metrics: {files: [results/metrics.json]}`"
    )


def test_the_not_found_note_says_where_mlgate_looked() -> None:
    read = reader({"b": {"metrics.json": '{"loss": 1}'}, "h": {"metrics.json": '{"loss": 2}'}})
    config = parse_config("version: 1\ngates:\n  acc: {min: 0.5}\n  loss: {max: 3}\n")
    [note] = compare_revisions_metrics(read, config, [], "b", "h").evaluation.notes
    assert note.startswith("Gated `acc` found in none of the metrics files read (`metrics.json`).")
    configured = parse_config("version: 1\nmetrics:\n  files: [m.json]\ngates:\n  acc: {min: 1}\n")
    notes = compare_revisions_metrics(read, configured, [], "b", "h").evaluation.notes
    [note] = [n for n in notes if n.startswith("Gated")]
    assert note.startswith("Gated `acc` found in no metrics file: none of `m.json` exists")
    passing = parse_config("version: 1\ngates:\n  loss: {max: 3}\n")
    assert compare_revisions_metrics(read, passing, [], "b", "h").evaluation.notes == []


def test_the_example_goes_at_the_end_of_a_summary_only_while_it_fits() -> None:
    lost = [GateResult("f1", None, False, "f1 not found", Gate("f1", min=0.5))]
    hints = (
        "\nAdd to `.github/mlgate.yml`:\n\n"
        "```yaml\nmetrics:\n  files: [results/metrics.json]\n```\n"
    )
    fits = "x" * (SUMMARY_LIMIT - len(hints))
    assert summary_with_hints(fits, lost) == fits + hints
    assert summary_with_hints(fits + "x", lost) == fits + "x"
    found = [GateResult("f1", "m.json", True, "ok", Gate("f1", min=0.5))]
    assert summary_with_hints("s", found) == "s"


def test_one_process_paces_a_burst_then_one_request_a_second_and_keeps_the_longest_pause() -> None:
    now = [100.0]
    pacer = ProcessPacer(capacity=3, rate=2.0, clock=lambda: now[0])
    assert [pacer.reserve("app") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [pacer.reserve("app") for _ in range(2)] == [0.5, 1.0]
    assert pacer.reserve(7) == 0.0  # scopes are separate
    pacer.pause("app", 30)
    pacer.pause("app", 5)
    now[0] += 10
    assert pacer.paused_for("app") == pytest.approx(20.0)
    assert pacer.paused_for(7) == 0.0


# --------------------------------------------------------- the Action, Semaphore and README


def _expressions(text: str, values: Mapping[str, str]) -> str:
    """GitHub's `${{ … }}` for the contexts the files use, values in place (recursively, as
    an input's default may be an expression itself)."""

    def value(match: re.Match[str]) -> str:
        return _expressions(values[match[1]], values)

    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", value, text)


def action() -> dict[str, Any]:
    document = yaml.safe_load(ACTION.read_text())
    assert isinstance(document, dict)
    return document


def test_the_action_is_composite_with_the_documented_inputs() -> None:
    document = action()
    assert document["runs"]["using"] == "composite"
    inputs = document["inputs"]
    assert set(inputs) == {"base", "token", "working-directory", "python-version"}
    assert inputs["token"]["default"] == "${{ github.token }}"
    assert inputs["base"]["default"] == "" and inputs["working-directory"]["default"] == "."
    python = tuple(int(n) for n in inputs["python-version"]["default"].split("."))
    assert python >= (3, 11)
    setup, install, run = document["runs"]["steps"]
    assert setup["uses"].startswith("actions/setup-python@")
    assert all(s.get("shell") == "bash" for s in (install, run))
    # The repository at the ref the workflow pins, two folders up from the action.
    source = _expressions(
        install["env"]["MLGATE_SOURCE"], {"github.action_path": str(ACTION.parent)}
    )
    pyproject = Path(source).resolve() / "pyproject.toml"
    assert re.search(r'^name = "mlgate"$', pyproject.read_text(), re.M)
    assert '"$MLGATE_SOURCE"' in install["run"] and "pip install" in install["run"]


def test_the_actions_step_runs_mlgate_ci_on_a_pull_request(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.93)})
    workspace = checkout(github, number, tmp_path / "workspace")
    event = event_file(github, number, tmp_path / "event.json")
    env = actions_env(github, "", event, tmp_path)
    del env["GITHUB_TOKEN"]  # the action passes its `token` input, the job's token by default
    run = action()["runs"]["steps"][2]
    inputs = {name: spec["default"] for name, spec in action()["inputs"].items()}
    values = {f"inputs.{name}": str(value) for name, value in inputs.items()}
    values |= {"inputs.base": "main", "github.token": job_token(github)}
    command = _expressions(run["run"], values)
    argv = shlex.split(command.replace('${MLGATE_BASE:+--base "$MLGATE_BASE"}', ""))
    assert argv[:2] == ["mlgate", "ci"]
    main.commands["ci"].make_context("ci", argv[2:])  # options mlgate knows
    step_env = env | {name: _expressions(v, values) for name, v in run["env"].items()}
    cwd = workspace / _expressions(run["working-directory"], values)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command],
        cwd=cwd,
        env=step_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [comment] = github.comments(REPO, number)
    data = parse_data(comment["body"])
    assert data is not None and data["base"] == github.repo(REPO).git.branch_sha("main")
    assert comment["user"]["login"] == ACTIONS_BOT


def semaphore_block() -> dict[str, Any]:
    document = yaml.safe_load(SEMAPHORE_BLOCK.read_text())
    [block] = [b for b in document["blocks"] if b["name"] == "mlgate"]
    assert isinstance(block, dict)
    return block


def test_the_semaphore_block_runs_on_pull_requests_with_the_token_secret() -> None:
    block = semaphore_block()
    assert "pull_request" in block["run"]["when"]
    assert block["task"]["secrets"] == [{"name": "mlgate-github"}]
    [job] = block["task"]["jobs"]
    assert job["commands"][:2] == ["sem-version python 3.11", "checkout"]
    [command] = [c for c in job["commands"] if c.startswith("mlgate ci")]
    values = {"SEMAPHORE_GIT_REPO_SLUG": REPO, "SEMAPHORE_GIT_PR_NUMBER": "3"}
    argv = shlex.split(re.sub(r"\$(\w+)", lambda m: values.get(m[1], "main"), command))
    params = main.commands["ci"].make_context("ci", argv[2:]).params
    assert (params["repo_name"], params["number"], params["base"]) == (REPO, 3, "main")
    assert params["head"] is None  # the PR's head, from GitHub


def test_the_semaphore_blocks_commands_fetch_both_commits_and_report(
    github: GitHubEmulator, tmp_path: Path
) -> None:
    number = open_pr(github, {"train.py": "print('v2')\n", **metrics(0.93)})
    # Semaphore's `checkout` of a PR: a shallow clone at the head.
    url = github.repo(REPO).path.as_uri()
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", url, "ws")
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "SEMAPHORE_GIT_REPO_SLUG": REPO,
        "SEMAPHORE_GIT_PR_NUMBER": str(number),
        "SEMAPHORE_GIT_BRANCH": "main",
        "GITHUB_TOKEN": job_token(github),
        "GITHUB_API_URL": github.url,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    [job] = semaphore_block()["task"]["jobs"]
    # Semaphore's own tools (sem-version, checkout) and the install are not run here.
    commands = [c for c in job["commands"][2:] if not c.startswith("pip install")]
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path / "ws", env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
    [comment] = github.comments(REPO, number)
    data = parse_data(comment["body"])
    assert data is not None and data["head"] == head(github, number)


def readme_ci_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Use it in CI in 2 minutes\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, "README.md has no `## Use it in CI in 2 minutes` section"
    return match[1]


def test_the_readme_workflow_has_the_permissions_the_full_history_and_this_action() -> None:
    [workflow] = re.findall(r"```yaml\n(.*?)```", readme_ci_section(), re.S)
    document = yaml.safe_load(workflow)
    # YAML 1.1 reads `on` as true.
    assert document[True] == {"pull_request": None}
    assert document["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "checks": "write",
    }
    # One run per PR at a time, so that two runs never both create the comment.
    assert document["concurrency"]["group"] == "mlgate-${{ github.event.pull_request.number }}"
    assert document["concurrency"]["cancel-in-progress"] is True
    [job] = document["jobs"].values()
    checkout_step, mlgate_step = job["steps"]
    assert checkout_step["uses"].startswith("actions/checkout@")
    assert checkout_step["with"] == {"fetch-depth": 0}
    uses = mlgate_step["uses"].split("@")[0]
    assert uses.endswith("/deploy/github-action")
    assert (ROOT / uses.split("/", 2)[2] / "action.yml") == ACTION


def test_the_readme_names_the_semaphore_block_and_the_any_ci_command() -> None:
    section = readme_ci_section()
    assert "deploy/semaphore/mlgate-ci.yml" in section
    [line] = [line for line in section.splitlines() if line.strip().startswith("mlgate ci --")]
    argv = shlex.split(line.strip())
    main.commands["ci"].make_context("ci", argv[2:])
