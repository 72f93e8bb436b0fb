"""The soak's moving parts: a GitHub that fails at random, a Redis of its own that it restarts,
and mlgate's processes (web, worker machines, scheduler) that it starts and kills."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bot.embedded_redis import find_redis_server
from bot.emulator import GitHubEmulator
from bot.loopback import Fault

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# GitHub's words for a secondary rate limit; retry-after makes it a pause, not a refusal.
RATE_LIMITED = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}
_ANY = re.compile("")


class ChaosError(Exception):
    """A part of the soak did not start."""


class FaultyGitHub(GitHubEmulator):
    """The GitHub emulator, answering `fault_rate` of all API requests, at random, with 502
    (half of them) or 403 with `retry-after: 1` (the other half), without acting on them."""

    def __init__(self, *args: Any, fault_rate: float, seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault_rate = fault_rate
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self.injected: Counter[int] = Counter()
        self.answered = 0

    def take_fault(self, method: str, path: str) -> Fault | None:
        planned = super().take_fault(method, path)
        if planned is not None:
            return planned
        with self._random_lock:
            self.answered += 1
            if self._random.random() >= self.fault_rate:
                return None
            bad_gateway = self._random.random() < 0.5
            status = 502 if bad_gateway else 403
            self.injected[status] += 1
        headers = {} if bad_gateway else {"retry-after": "1"}
        body = None if bad_gateway else dict(RATE_LIMITED)
        return Fault(method, _ANY, 1, status, headers, body, 0.0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of the soak's own on a free loopback port, never the machine's shared
    one, with an append-only file so that a restart keeps every key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self.downtime = 0.0

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            find_redis_server(),
            "--bind", HOST,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    # Answers LOADING until the append-only file is read back.
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise ChaosError(f"redis-server on port {self.port} did not start")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: redis-server writes its append-only file out, then exits."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def restart(self, down: float) -> None:
        """Stop, stay down `down` seconds, start again on the same port and files."""
        started = time.monotonic()
        self.stop()
        time.sleep(down)
        self.start()
        self.downtime += time.monotonic() - started


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


class Processes:
    """mlgate's own processes, started as operators start them, each logging to a file."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: list[str] = []

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *argv],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = process
        return process

    def web(self, port: int) -> str:
        self.start("web", "serve", "--bind", f"{HOST}:{port}")
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/healthz"):
            if self.running["web"].poll() is not None or time.monotonic() > deadline:
                raise ChaosError(f"`mlgate serve` did not answer; see {self.logs / 'web.log'}")
            time.sleep(0.1)
        return url

    def kill(self, name: str) -> int:
        """SIGKILL a process and everything under it, as a lost machine; how many died."""
        process = self.running.pop(name)
        victims = [process.pid, *descendants(process.pid)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        self.killed.append(name)
        return len(victims)

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass  # killed below, with what it started
            for pid in [process.pid, *descendants(process.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
        self.running.clear()

    def log_lines(self, needle: str) -> int:
        """How many lines of every log hold `needle`."""
        found = 0
        for log in self.logs.glob("*.log"):
            with log.open(errors="replace") as lines:
                found += sum(line.count(needle) for line in lines)
        return found


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except OSError:
        return False
    return True
