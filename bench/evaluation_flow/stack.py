"""The whole product on loopback: embedded Redis, GitHub emulator, web thread, `mlgate worker`."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Worker

from bot import logs
from bot.embedded_redis import EmbeddedRedis
from bot.emulator import GitHubEmulator
from bot.loopback import serve
from bot.state.queues import QUEUES
from bot.state.redis_conn import connect
from bot.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "tests" / "fixtures" / "github" / "openapi-subset.json"
APP_ID = "1"
SECRET = "bench-webhook-secret"
_WORKER_START_TIMEOUT = 30.0
# rq's warm shutdown lets a job finish; evaluations here take well under a second.
_WORKER_STOP_TIMEOUT = 20.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StackError(Exception):
    """Part of the stack did not start, or stopped by itself."""


@dataclass(frozen=True)
class Stack:
    """What a measurement talks to."""

    emulator: GitHubEmulator
    redis: redis.Redis
    env: dict[str, str]
    web_url: str
    worker: subprocess.Popen[bytes]
    work_dir: Path

    def cpu_seconds(self) -> float | None:
        """CPU used so far by everything the benchmark runs, all cores together.

        This process (web, emulator, polling) and the git commands it waited for, the worker
        and its descendants (rq reaps its work horses, so their time is in cutime), and Redis.
        None without /proc.
        """
        worker = _tree_cpu(self.worker.pid)
        if worker is None:
            return None
        own = sum(
            r.ru_utime + r.ru_stime
            for r in (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
        )
        info = self.redis.info("cpu")
        return own + worker + float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def check_worker(self) -> None:
        if self.worker.poll() is not None:
            raise StackError(f"`mlgate worker` exited with {self.worker.returncode}")


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on (the command name may hold spaces), or None."""
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _tree_cpu(root: int) -> float | None:
    """utime + stime + cutime + cstime of `root` and every living descendant, in seconds."""
    stats = {
        int(entry.name): fields
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None
    }
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        # proc(5): fields 14-17 are utime, stime, cutime, cstime; the list starts at field 3.
        total += sum(int(f) for f in stats[pid][11:15])
        todo += children.get(pid, [])
    return total / _CLOCK_TICKS


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real `mlgate worker`, in its own process group so that every child is stopped."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            cwd=ROOT,
            env=os.environ | env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            # SIGTERM to the main process: it asks each rq worker for a warm shutdown.
            process.terminate()
            try:
                process.wait(timeout=_WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # rq work horses are forked grandchildren; none may outlive the run.
            deadline = time.monotonic() + 5
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)


def _wait_for_workers(conn: redis.Redis, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until every rq worker of `mlgate worker` listens: the first event must not wait for it."""
    deadline = time.monotonic() + _WORKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"`mlgate worker` exited with {process.returncode}; its log ends:\n{_tail(log)}"
            )
        workers = Worker.all(connection=conn)
        if {q.name for w in workers for q in w.queues} >= set(QUEUES):
            return
        time.sleep(0.1)
    raise StackError(
        f"`mlgate worker` did not listen on {QUEUES} within 30 s; its log ends:\n{_tail(log)}"
    )


@contextmanager
def running(keep_dir: bool = False) -> Iterator[Stack]:
    """Start everything on loopback (Redis on a unix socket); stop and remove it all after."""
    with ExitStack() as stack:
        work = Path(
            tempfile.mkdtemp(prefix="mlgate-bench-flow-")
            if keep_dir
            else stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-bench-flow-"))
        )
        stack.enter_context(logs.to_file(work / "web.log"))
        redis_server = stack.enter_context(EmbeddedRedis())
        emulator = stack.enter_context(
            GitHubEmulator(
                app_id=APP_ID,
                openapi_path=OPENAPI if OPENAPI.exists() else None,
                root=work / "github",
            )
        )
        env = {
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "REDIS_URL": redis_server.url,
            "GITHUB_APP_ID": APP_ID,
            "GITHUB_PRIVATE_KEY": emulator.app_private_key_pem,
            "GITHUB_API_URL": emulator.url,
            "MLGATE_DATA_DIR": str(work / "data"),
            "MLGATE_RETRY_DELAYS": "1,2",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        conn = connect(redis_server.url, socket_timeout=10)
        stack.callback(conn.close)
        # The web in a thread of this process, as `mlgate demo` runs it.
        web_url = stack.enter_context(serve(create_app(env)))
        worker_log = work / "worker.log"
        worker = stack.enter_context(_worker(env, worker_log))
        _wait_for_workers(conn, worker, worker_log)
        emulator.configure_webhook(f"{web_url}/webhooks/github", SECRET)
        try:
            yield Stack(emulator, conn, env, web_url, worker, work)
        except Exception:
            # The logs are deleted with the directory; their ends usually say what went wrong.
            _print_tail(worker_log)
            _print_tail(work / "web.log")
            raise


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _print_tail(path: Path) -> None:
    sys.stderr.write(f"--- the end of {path.name} ---\n{_tail(path)}\n")
