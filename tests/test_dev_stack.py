"""`mlgate dev` on a laptop: the emulator when no App is set, and a stop that leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP_VARIABLES = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH", "REDIS_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_members(pgids: set[int]) -> list[int]:
    """Processes still alive in any of these process groups."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def run_dev(tmp_path: Path, stop: str) -> tuple[int, str, set[int], Path]:
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}
    env |= {"TMPDIR": str(temp), "MLGATE_DATA_DIR": str(tmp_path / "data")}
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log_file:
        dev = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "dev", "--port", str(port), "--open-pr"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 150
            while "mlgate/quality" not in log_path.read_text():
                assert dev.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
        finally:
            if stop == "ctrl-c":
                os.killpg(dev.pid, signal.SIGINT)  # what a terminal sends: the whole group
            else:
                dev.send_signal(signal.SIGTERM)  # what systemd or a supervisor sends
            code = dev.wait(timeout=90)
    output = log_path.read_text()
    pids = {int(p) for p in re.findall(r"started \(pid (\d+)\)", output)}
    return code, output, pids, temp


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_dev_without_an_app_runs_the_emulator_opens_a_pr_and_stops_leaving_nothing(
    tmp_path: Path, stop: str
) -> None:
    code, output, pids, temp = run_dev(tmp_path, stop)
    assert code == 0, output
    assert "using the built-in GitHub emulator" in output
    assert re.search(r"PR #1: mlgate/quality (success|failure|neutral)", output), output
    assert "<!-- mlgate:report -->" in output
    assert "Traceback" not in output, output
    assert len(pids) == 3  # web, worker, scheduler
    # No process of theirs (gunicorn's workers, rq's horses) outlives mlgate dev...
    assert group_members(pids) == []
    # ...nor any temporary directory (the embedded Redis's, the emulator's repositories).
    assert list(temp.iterdir()) == []
    assert output.rstrip().endswith("mlgate dev: stopped")
