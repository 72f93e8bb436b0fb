"""`mlgate` commands that talk to no server load no HTTP, Redis, queue or web library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import sample

ROOT = Path(__file__).resolve().parent.parent
# Each costs tens to hundreds of milliseconds to import; `report`, `config validate` and
# `--help` need none of them.
HEAVY = ("requests", "urllib3", "redis", "rq", "flask", "werkzeug", "prometheus_client", "jwt")

# Runs one command in a fresh interpreter, then names the heavy packages it imported.
PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:], prog_name="mlgate", standalone_mode=False)
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
    sys.stderr.write("\\nLOADED=" + json.dumps(loaded) + "\\n")
"""


def loaded_by(*args: str, cwd: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *args],
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = result.stderr.rsplit("LOADED=", 1)
    assert len(marker) == 2, result.stderr
    loaded: list[str] = json.loads(marker[1])
    return loaded


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The sample repository with one commit, so that `report` really compares something."""
    subprocess.run(["git", "init", "--quiet", "--initial-branch", "main"], cwd=tmp_path, check=True)
    for name, text in sample.files(sample.BASE_DATA, sample.BASE_PARAMS).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "add", "--all"], cwd=tmp_path, check=True)
    subprocess.run(
        [
            *("git", "-c", "user.name=Alice", "-c", "user.email=alice@example.com"),
            *("-c", "commit.gpgsign=false", "commit", "--quiet", "--message", "base"),
        ],
        cwd=tmp_path,
        check=True,
    )
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("report", "--base", "main", "--json"),
        ("report", "--base", "main"),
        ("config", "validate"),
    ],
    ids=["help", "report --json", "report --md", "config validate"],
)
def test_a_local_command_imports_no_heavy_library(repo: Path, args: tuple[str, ...]) -> None:
    assert loaded_by(*args, cwd=repo) == []


def test_the_probe_sees_a_command_that_does_import_them(repo: Path) -> None:
    # `token list` talks to Redis: the probe must name it, or the test above proves nothing.
    assert "redis" in loaded_by("token", "list", cwd=repo)
