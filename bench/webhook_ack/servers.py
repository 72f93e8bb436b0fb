"""The servers under test as real processes on loopback, and their CPU use."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
_START_TIMEOUT = 30.0
# gunicorn.conf.py gives workers 10 s to finish their requests on SIGTERM.
_STOP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServerError(Exception):
    """A server under test did not start, or stopped by itself."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process (a gunicorn master, or node) started by the benchmark, logging to a file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    port: int
    log_path: Path
    health_path: str = "/healthz"
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            self.check_alive()
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", self.health_path)
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"{self.name} did not answer within {_START_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ServerError(
                f"{self.name} exited with status {self.process.returncode}; "
                f"its log ends with:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def workers(self) -> list[int]:
        assert self.process is not None
        return children(self.process.pid)

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the process and its children so far; None without /proc."""
        assert self.process is not None
        pids = [self.process.pid, *self.workers()]
        times = [process_cpu(pid) for pid in pids]
        if any(t is None for t in times):
            return None
        return sum(t for t in times if t is not None)

    def terminate(self) -> None:
        """Ask gunicorn for a graceful shutdown without waiting for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def machine_cpu() -> float | None:
    """CPU seconds the whole machine has been busy, all cores together; None without /proc."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # proc(5): cpu user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
    ticks = [int(f) for f in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_cpu(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # proc(5): utime and stime are fields 14 and 15; the list starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)
