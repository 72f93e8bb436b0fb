"""The `mlgate` command: serve, worker, replay and dev, run as real processes where it matters."""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import redis
import requests
from click.testing import CliRunner
from rq import Queue

from bot import create_app
from bot.cli import DEV_WEBHOOK_SECRET, main
from bot.core.signatures import sign
from bot.loopback import serve
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.installations import installed_repositories
from bot.state.queues import EVENTS, RUNS, accept_github_delivery
from tests.support import FIXTURES, SECRET

INSTALLATION_CREATED = FIXTURES / "github" / "installation" / "created.payload.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_to_start_without_a_secret_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "GITHUB_WEBHOOK_SECRET is not set" in result.output


def test_worker_burst_runs_jobs_of_both_queues_in_worker_processes(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    accept_github_delivery(redis_conn, "installation", "w-1", INSTALLATION_CREATED.read_bytes(), ())
    runs_job = Queue(RUNS, connection=redis_conn).enqueue("builtins.len", "abc")
    env = os.environ | {"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert deliveries.state(redis_conn, "github", "w-1") is DeliveryState.DONE
    assert installed_repositories(redis_conn) == {"Codertocat/Hello-World": 957387}
    runs_job.refresh()  # type: ignore[no-untyped-call]  # untyped in rq
    assert runs_job.return_value() == 3


def test_replay_signs_and_sends_a_saved_payload(
    redis_conn: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app({"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url})
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    with serve(app) as url:
        args = ["replay", str(INSTALLATION_CREATED), "--event", "installation"]
        args += ["--url", f"{url}/webhooks/github", "--delivery", "r-1"]
        first = CliRunner().invoke(main, args)
        again = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output == "202 accepted: delivery r-1\n"
    assert again.output == "200 duplicate: delivery r-1 was seen before\n"
    assert Queue(EVENTS, connection=redis_conn).count == 1


def test_replay_with_the_wrong_secret_fails_with_the_servers_reason(
    redis_conn: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app({"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url})
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "some-other-secret")
    with serve(app) as url:
        result = CliRunner().invoke(
            main,
            [
                "replay",
                str(INSTALLATION_CREATED),
                "--event",
                "installation",
                "--url",
                url + "/webhooks/github",
            ],
        )
    assert result.exit_code == 1
    assert "401 bad signature" in result.output


def test_dev_runs_web_worker_and_embedded_redis_and_stops_them_all_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GITHUB_WEBHOOK_SECRET")}
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log_file:
        dev = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "dev", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass  # still booting
                assert dev.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            match = re.search(r"embedded Redis at (\S+)", log_path.read_text())
            assert match, log_path.read_text()
            conn = redis.Redis.from_url(match.group(1))
            body = INSTALLATION_CREATED.read_bytes()
            headers = {
                "X-GitHub-Event": "installation",
                "X-GitHub-Delivery": "dev-1",
                "X-Hub-Signature-256": sign(DEV_WEBHOOK_SECRET, body),
                "Content-Type": "application/json",
            }
            answer = requests.post(f"{base}/webhooks/github", data=body, headers=headers, timeout=5)
            assert answer.status_code == 202
            while deliveries.state(conn, "github", "dev-1") is not DeliveryState.DONE:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            assert installed_repositories(conn) == {"Codertocat/Hello-World": 957387}
            conn.close()
        finally:
            os.killpg(dev.pid, signal.SIGINT)
            code = dev.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    assert "web       |" in output and "worker    |" in output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_config_validate_reports_each_problem_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "mlgate.yml"
    bad.write_text("version: 1\ngates:\n  accuracy: {min: high}\n")
    result = CliRunner().invoke(main, ["config", "validate", str(bad)])
    assert result.exit_code == 1
    assert result.output == f'{bad}:3 gates.accuracy.min: expected a number, got "high"\n'


def test_config_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    good = tmp_path / "mlgate.yml"
    good.write_text("version: 1\ngates:\n  accuracy: {min: 0.87, max_drop: 0.01}\n")
    result = CliRunner().invoke(main, ["config", "validate", str(good)])
    assert (result.exit_code, result.output) == (0, f"{good}: valid\n")


def test_config_validate_without_the_file_says_the_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["config", "validate"])
    assert (result.exit_code, result.output) == (
        0,
        ".github/mlgate.yml: no file: the defaults apply — OK\n",
    )
    # A file named explicitly must exist: a typo in a CI step must not pass.
    missing = tmp_path / "elsewhere.yml"
    result = CliRunner().invoke(main, ["config", "validate", str(missing)])
    assert (result.exit_code, result.output) == (1, f"Error: {missing}: no such file\n")


def test_config_validate_reads_the_repositorys_file_by_default_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "mlgate.yml").write_text("version: 1\ngates:\n  accuracy: {}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["config", "validate"])
    assert (result.exit_code, result.output) == (
        1,
        ".github/mlgate.yml:3 gates.accuracy: expected at least one threshold:"
        " min, max, max_drop or max_rise, got an empty mapping\n",
    )
    helped = CliRunner().invoke(main, ["config", "validate", "--help"])
    assert "default: .github/mlgate.yml under the current directory" in helped.output


def test_version_is_the_installed_packages(tmp_path: Path) -> None:
    with (Path(__file__).parent.parent / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert version == importlib.metadata.version("mlgate")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"mlgate {version}\n")


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_every_option_of_every_command_has_help() -> None:
    undocumented = [
        f"{path} {option.opts[0]}"
        for path, command in [("mlgate", main), *_commands(main, "mlgate")]
        for option in command.params
        if isinstance(option, click.Option) and not (option.help or "").strip()
    ]
    assert undocumented == []
    # The check must see the options it judges: these are known to exist.
    seen = {
        f"{path} {opt}"
        for path, command in [("mlgate", main), *_commands(main, "mlgate")]
        for option in command.params
        for opt in option.opts
    }
    assert {"mlgate --version", "mlgate dev --port", "mlgate replay --url"} <= seen
