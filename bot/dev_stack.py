"""`mlgate dev`: web, worker, scheduler and Redis on one laptop; the built-in GitHub emulator
and a sample repository stand in for GitHub when no App is configured.

Each child runs in its own session, so a terminal's Ctrl-C reaches only this process, which
then stops them in order (web, scheduler, worker, then the emulator and Redis) and leaves no
process or temporary directory behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bot import sample
from bot.embedded_redis import EmbeddedRedis
from bot.errors import MlgateError

if TYPE_CHECKING:
    from bot.emulator import GitHubEmulator

Echo = Callable[[str], None]
SAMPLE_REPO = "acme/sample-model"
SAMPLE_INSTALLATION = 7
SAMPLE_AUTHOR = "alice"
# rq finishes a running job on SIGTERM; a sandboxed evaluation of the sample takes seconds.
STOP_TIMEOUT = 30.0
OPEN_PR_TIMEOUT = 90.0


def has_app(env: Mapping[str, str]) -> bool:
    """Whether a real GitHub App is configured (else `mlgate dev` uses the emulator)."""
    key = env.get("GITHUB_PRIVATE_KEY") or env.get("GITHUB_PRIVATE_KEY_PATH")
    return bool(env.get("GITHUB_APP_ID") and key)


def _pump(prefix: str, stream: IO[bytes], echo: Echo) -> None:
    for line in iter(stream.readline, b""):
        echo(f"{prefix} | {line.decode(errors='replace').rstrip()}")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread

    def stop(self) -> None:
        """SIGTERM to the child's whole process group (gunicorn's workers, rq's horses), then
        SIGKILL what is left after STOP_TIMEOUT."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        # Members of the group that outlived their leader (a horse mid-job) go too.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.pump.join(timeout=5)


@dataclass
class DevStack:
    port: str
    echo: Echo
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    stopping: threading.Event = field(default_factory=threading.Event)

    def _start(self, name: str, argv: list[str]) -> Child:
        process = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        pump = threading.Thread(target=_pump, args=(name, process.stdout, self.echo), daemon=True)
        pump.start()
        self.echo(f"{name} | started (pid {process.pid})")
        return Child(name, process, pump)

    @contextmanager
    def _redis(self) -> Iterator[str]:
        url = self.env.get("REDIS_URL")
        if url:
            yield url
            return
        with EmbeddedRedis() as embedded:
            self.echo(f"embedded Redis at {embedded.url}")
            yield embedded.url

    @contextmanager
    def _emulator(self, work: Path) -> Iterator[GitHubEmulator | None]:
        """The emulator with the sample repository, or None when a real App is configured."""
        if has_app(self.env):
            yield None
            return
        from bot.emulator import GitHubEmulator as Emulator

        with Emulator(app_id="1", root=work / "github") as emulator:
            emulator.add_installation(SAMPLE_INSTALLATION, "acme")
            emulator.create_repo(
                SAMPLE_REPO,
                installation_id=SAMPLE_INSTALLATION,
                files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS),
            )
            emulator.set_permission(SAMPLE_REPO, SAMPLE_AUTHOR, "write")
            self.env |= {
                "GITHUB_APP_ID": "1",
                "GITHUB_PRIVATE_KEY": emulator.app_private_key_pem,
                "GITHUB_API_URL": emulator.url,
            }
            self.echo(
                f"no GitHub App configured (GITHUB_APP_ID, GITHUB_PRIVATE_KEY): using the "
                f"built-in GitHub emulator at {emulator.url} with the sample repository "
                f"{SAMPLE_REPO}; `mlgate dev --open-pr` opens a PR on it"
            )
            yield emulator

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping.set()

    def run(self, secret: str, open_pr: bool) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        self.env.setdefault("WEB_CONCURRENCY", "2")  # one developer's traffic
        self.env["GITHUB_WEBHOOK_SECRET"] = secret
        children: list[Child] = []
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-dev-")))
            self.env.setdefault("MLGATE_DATA_DIR", str(work / "data"))
            self.env["REDIS_URL"] = stack.enter_context(self._redis())
            emulator = stack.enter_context(self._emulator(work))
            try:
                mlgate = [sys.executable, "-m", "bot.cli"]
                for name, argv in (
                    ("worker   ", [*mlgate, "worker"]),
                    ("scheduler", [*mlgate, "scheduler"]),
                    ("web      ", [*mlgate, "serve", "--bind", f"127.0.0.1:{self.port}"]),
                ):
                    children.append(self._start(name, argv))
                url = f"http://127.0.0.1:{self.port}"
                self.echo(f"mlgate dev: webhook at {url}/webhooks/github")
                if emulator is not None:
                    emulator.configure_webhook(f"{url}/webhooks/github", secret)
                    if open_pr:
                        self._open_pr(emulator, url)
                while not self.stopping.is_set():
                    if any(c.process.poll() is not None for c in children):
                        self.echo("a process stopped by itself: stopping the others")
                        break
                    self.stopping.wait(0.5)
            finally:
                # Web first (nothing new comes in), Redis last (the others need it to stop).
                for child in reversed(children):
                    child.stop()
                self.echo("mlgate dev: stopped")
        return 0

    def _open_pr(self, emulator: GitHubEmulator, url: str) -> None:
        import requests

        deadline = time.monotonic() + OPEN_PR_TIMEOUT
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        repo = emulator.repo(SAMPLE_REPO)
        files = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
        changed = {
            n: files[n]
            for n in ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
        }
        head = repo.commit("more-data", changed, "Add 64 images and 60 rows")
        pull = emulator.open_pull_request(
            SAMPLE_REPO, head="more-data", base="main", user=SAMPLE_AUTHOR, title="More data"
        )
        number = int(pull["number"])
        event = {
            "action": "opened",
            "number": number,
            "pull_request": emulator.pull_request(SAMPLE_REPO, number),
            "repository": emulator.repository(SAMPLE_REPO),
            "installation": {"id": SAMPLE_INSTALLATION},
            "sender": emulator.user_json(SAMPLE_AUTHOR),
        }
        emulator.send_webhook("pull_request", event)
        while time.monotonic() < deadline and not self.stopping.is_set():
            runs = [
                r for r in emulator.check_runs(SAMPLE_REPO, head) if r["name"] == "mlgate/quality"
            ]
            if runs and runs[-1]["status"] == "completed":
                comments = emulator.comments(SAMPLE_REPO, number)
                self.echo(f"PR #{number}: mlgate/quality {runs[-1]['conclusion']}; the comment:")
                for line in (comments[-1]["body"] if comments else "").splitlines():
                    self.echo(f"    {line}")
                return
            time.sleep(0.2)
        if not self.stopping.is_set():
            raise MlgateError(f"no mlgate/quality on PR #{number} after {OPEN_PR_TIMEOUT:.0f} s")
