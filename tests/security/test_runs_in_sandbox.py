"""Evaluation, retrain and deploy runs go through the sandbox with their step's settings."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import demo, sample
from bot.core.report import MARKER
from bot.emulator import GitHubEmulator
from bot.runs.sandbox import HOW_TO_FIX, readiness
from tests.support import Bot, comment_event, pull_request_event
from tests.test_cli import free_port

REPO = "octo/model"


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on the host's loopback: the kernel completes a connection without accept()."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield int(server.getsockname()[1])


def probe(port: int) -> str:
    """Python a step runs: can it reach the host's loopback, and allocate 1 GiB?"""
    return (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "    print('network: reached')\n"
        "except OSError as exc:\n"
        "    print('network: refused', type(exc).__name__)\n"
        "try:\n"
        "    block = bytearray(1024 ** 3)\n"
        "    print('memory: allocated')\n"
        "except MemoryError:\n"
        "    print('memory: refused')\n"
    )


def config(evaluate: str = "", retrain: str = "") -> str:
    return (
        "version: 1\n"
        "metrics: {source: run}\n"
        f"evaluate: {{run: python3 evaluate.py, timeout: 1m{evaluate}}}\n"
        f"retrain: {{runner: local, run: python3 train.py{retrain}}}\n"
        "gates:\n  accuracy: {min: 0.80}\n"
    )


def open_pr(bot: Bot, emulator: GitHubEmulator, mlgate_yml: str, port: int) -> int:
    """alice's PR (write permission, same repository: trusted) whose steps probe the sandbox."""
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    files |= {".github/mlgate.yml": mlgate_yml, "train.py": "print('train')\n" + probe(port)}
    emulator.create_repo(REPO, installation_id=42, files=files)
    emulator.set_permission(REPO, "alice", "write")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    evaluate = sample.EVALUATE_PY + probe(port)
    names = ("dvc.lock", "data/features.csv")
    emulator.repo(REPO).commit("feature", {n: better[n] for n in names} | {"evaluate.py": evaluate})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    return number


def report(emulator: GitHubEmulator, number: int) -> str:
    return str(
        next(c["body"] for c in emulator.comments(REPO, number) if c["body"].startswith(MARKER))
    )


def quality(emulator: GitHubEmulator, number: int) -> dict[str, Any]:
    sha = emulator.pull_request(REPO, number)["head"]["sha"]
    return [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"][-1]


def left_in(data_dir: Path) -> list[str]:
    """Files (not directories) left under the data directory's checkouts."""
    root = data_dir / "checkouts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """PATH as the worker's, without bubblewrap: every program but `bwrap`, linked. Returns
    the PATH it replaced."""
    original = os.environ["PATH"]
    host = tmp_path / "host-bin"
    host.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = host / entry.name
            if entry.name != "bwrap" and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    monkeypatch.setenv("PATH", str(host))
    assert shutil.which("bwrap") is None and shutil.which("git") is not None
    return original


@pytest.mark.parametrize(
    ("settings", "network", "memory"),
    [
        ("", "network: refused", "memory: allocated"),  # off, 4G
        (", network: true, memory: 256M", "network: reached", "memory: refused"),
    ],
)
def test_an_evaluation_runs_with_its_steps_network_and_memory_and_leaves_no_checkout(
    bot: Bot,
    emulator: GitHubEmulator,
    listener: int,
    env: dict[str, str],
    settings: str,
    network: str,
    memory: str,
) -> None:
    number = open_pr(bot, emulator, config(evaluate=settings), listener)
    body = report(emulator, number)
    assert "evaluated 300 rows" in body  # it ran, in the sandbox
    assert network in body and memory in body
    assert quality(emulator, number)["conclusion"] == "success"
    assert left_in(Path(env["MLGATE_DATA_DIR"])) == []


def test_a_retrain_runs_with_the_retrain_steps_settings(
    bot: Bot, emulator: GitHubEmulator, listener: int
) -> None:
    number = open_pr(bot, emulator, config(retrain=", network: true"), listener)
    event = comment_event(emulator, REPO, number, "/retrain", "alice")
    assert bot.deliver("issue_comment", event) == 202
    body = report(emulator, number)
    train_log, _, evaluate_log = body.partition("evaluated 300 rows")
    assert "train\nnetwork: reached" in train_log  # retrain.network: true
    assert "network: refused" in evaluate_log  # evaluate.network: off by default


def test_without_bubblewrap_nothing_is_fetched_or_run_and_the_check_says_how_to_fix_it(
    bot: Bot, emulator: GitHubEmulator, listener: int, env: dict[str, str], no_bwrap: str
) -> None:
    number = open_pr(bot, emulator, config(), listener)
    check = quality(emulator, number)
    assert (check["conclusion"], check["output"]["title"]) == (
        "neutral",
        "Not evaluated: no sandbox on the worker",
    )
    assert HOW_TO_FIX in check["output"]["summary"]
    assert "evaluated 300 rows" not in str([c["body"] for c in emulator.comments(REPO, number)])
    assert not (Path(env["MLGATE_DATA_DIR"]) / "checkouts").exists()


def deploy_pr(bot: Bot, emulator: GitHubEmulator, port: int) -> int:
    mlgate_yml = sample.MLGATE_YML.format(source="git") + (
        "deploy:\n  run: python3 deploy.py\n  approvers: {permission: maintain}\n  on: approval\n"
    )
    emulator.add_installation(42, "octo")
    files = sample.files(sample.BASE_DATA, sample.BASE_PARAMS) | {".github/mlgate.yml": mlgate_yml}
    emulator.create_repo(REPO, installation_id=42, files=files)
    emulator.set_permission(REPO, "ada", "admin")
    changed = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "metrics.json")
    deploy_py = (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "print('deployed')\n"
    )
    emulator.repo(REPO).commit("feature", {n: changed[n] for n in names} | {"deploy.py": deploy_py})
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )
    assert bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened")) == 202
    event = comment_event(emulator, REPO, number, "/deploy", "ada")
    assert bot.deliver("issue_comment", event) == 202
    return number


def test_deploy_run_has_the_network_by_default(
    bot: Bot, emulator: GitHubEmulator, listener: int, env: dict[str, str]
) -> None:
    deploy_pr(bot, emulator, listener)
    [deployment] = emulator.deployments(REPO)
    states = [s["state"] for s in emulator.deployment_statuses(deployment["id"])]
    assert states == ["in_progress", "success"]
    assert left_in(Path(env["MLGATE_DATA_DIR"])) == []


def test_without_bubblewrap_deploy_run_runs_nothing_and_its_deployment_says_why(
    bot: Bot,
    emulator: GitHubEmulator,
    listener: int,
    env: dict[str, str],
    no_bwrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = deploy_pr(bot, emulator, listener)
    [deployment] = emulator.deployments(REPO)
    statuses = emulator.deployment_statuses(deployment["id"])
    assert [s["state"] for s in statuses] == ["in_progress", "error"]
    assert HOW_TO_FIX in statuses[-1]["description"]
    assert not (Path(env["MLGATE_DATA_DIR"]) / "checkouts").exists()
    # Nothing ran: once bubblewrap is there, approving again deploys.
    monkeypatch.setenv("PATH", no_bwrap)
    assert shutil.which("bwrap") is not None
    event = comment_event(emulator, REPO, number, "/deploy", "ada")
    assert bot.deliver("issue_comment", event) == 202
    latest = emulator.deployments(REPO)[-1]
    assert [s["state"] for s in emulator.deployment_statuses(latest["id"])] == [
        "in_progress",
        "success",
    ]


def test_the_demo_without_bubblewrap_runs_nothing_and_says_how_to_fix_it(
    no_bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLGATE_SANDBOX", raising=False)
    lines: list[str] = []
    assert demo.run(lines.append) == 1
    [said] = lines
    assert said.startswith("mlgate demo runs the sample repository's evaluate.py, and ")
    assert HOW_TO_FIX in said


def test_mlgate_sandbox_none_is_the_only_opt_out_and_it_is_said(no_bwrap: str) -> None:
    assert HOW_TO_FIX in str(readiness("bwrap"))
    assert "without a sandbox" in str(readiness("none"))


def test_with_bubblewrap_there_is_nothing_to_say() -> None:
    assert readiness("bwrap") is None


def test_mlgate_dev_without_bubblewrap_says_so_at_start(
    no_bwrap: str, env: dict[str, str], tmp_path: Path
) -> None:
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log_file:
        dev = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "dev", "--port", str(free_port())],
            env=dict(os.environ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while HOW_TO_FIX not in log_path.read_text(errors="replace"):
                assert dev.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        finally:
            os.killpg(dev.pid, signal.SIGINT)
            dev.wait(timeout=30)
    said = log_path.read_text()
    assert (
        "mlgate dev: repository code will not run here: bubblewrap (`bwrap`) is not on PATH" in said
    )
