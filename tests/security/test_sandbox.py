"""Sandbox canaries: a repository command tries every way out, with real bubblewrap, and fails."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from bot.errors import SandboxUnavailable, SettingsError
from bot.runs.runner import (
    DEFAULT_GRACE,
    RunResult,
    checkout_path,
    fresh_home,
    home_path,
    run,
    run_environment,
)
from bot.runs.sandbox import (
    DEFAULT_MEMORY,
    DEFAULT_PROCESSES,
    SYSTEM_DIRS,
    confine,
    require,
)
from bot.settings import Settings, sandbox_mode
from bot.state.redis_conn import key

SHA = "0123456789abcdef0123456789abcdef01234567"
# The variables a worker holds that must never reach repository code.
WORKER_SECRETS = (
    "GITHUB_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "SEMAPHORE_API_TOKEN",
    "SEMAPHORE_WEBHOOK_SECRET",
    "REDIS_URL",
)

# Run inside the sandbox with the worker's Python: everything a hostile evaluate.run would try
# to find the bot's secrets, keep them, or leave something behind for later runs.
ATTACK = textwrap.dedent(
    """
    import glob, os, socket, sys
    real_home, data_dir, key_path, redis_host, redis_port, listener = sys.argv[1:7]
    read_only = sys.argv[7:]
    loot = []

    def grab(path):
        try:
            with open(path, "rb") as f:
                loot.append(f.read())
            return "read"
        except OSError as e:
            return type(e).__name__

    def walk(top):
        for root, dirs, files in os.walk(top):
            for name in files:
                grab(os.path.join(root, name))

    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    print("pids visible:", len(pids))
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
        grab(path)
    ppid = os.getppid()
    for part in ("environ", "cmdline", "status", "maps"):
        print(f"/proc/$PPID/{part}:", grab(f"/proc/{ppid}/{part}"))
    for root in (f"/proc/{ppid}/root", "/proc/1/root"):
        try:
            walk(os.path.join(root, os.path.dirname(data_dir).lstrip("/")))
        except OSError:
            pass
    print("key file:", grab(key_path))
    print("data dir parent:", sorted(os.listdir(os.path.join(data_dir, ".."))))
    walk(os.path.join(data_dir, ".."))
    walk(real_home)
    for host, port in ((redis_host, redis_port), ("127.0.0.1", listener)):
        try:
            with socket.create_connection((host, int(port)), timeout=2) as conn:
                conn.sendall(b"KEYS *\\r\\nGET mlgate:canary:installation-token\\r\\n")
                loot.append(conn.recv(65536))
            print(f"loopback {port}: reached")
        except OSError as e:
            print(f"loopback {port}: {type(e).__name__}")
    try:
        os.makedirs(real_home, exist_ok=True)
        with open(os.path.join(real_home, ".gitconfig"), "w") as f:
            f.write('[url "https://evil.example/"]\\n\\tinsteadOf = https://github.com/\\n')
        print("wrote the real HOME's path (in a private /tmp, if anywhere)")
    except OSError as e:
        print("real HOME:", type(e).__name__)
    with open(os.path.expanduser("~/.gitconfig"), "w") as f:
        f.write("[user]\\n\\tname = planted\\n")
    for target in read_only:
        try:
            open(target, "w").close()
            print("wrote", target)
        except OSError as e:
            print("read-only:", target, type(e).__name__)
    everything = b"\\n".join(loot)
    with open("loot.bin", "wb") as f:
        f.write(everything)
    # The way the issue's attack slipped past redaction: printed reversed.
    print("reversed:", everything[::-1][-20000:].decode("latin-1"))
    print("attack finished")
    """
)


@dataclass
class Worker:
    """A worker's surroundings with the canary wherever a command might look for it."""

    canary: str
    root: Path
    data: Path
    home: Path
    key_file: Path
    checkout: Path
    planted: set[Path]
    redis_host: str
    redis_port: int


@pytest.fixture
def worker(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_conn: redis.Redis,
    redis_url: str,
) -> Worker:
    canary = f"canary-{uuid.uuid4().hex}"
    data, home, keys = tmp_path / "data", tmp_path / "worker-home", tmp_path / "keys"
    for name in WORKER_SECRETS:
        monkeypatch.setenv(name, f"{canary}-{name}")
    key_file = keys / "app.pem"
    other = checkout_path(data, "octo/other", 1, SHA) / "secret.txt"
    planted = {key_file, home / ".netrc", home / ".git-credentials", data / "state.json", other}
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{canary}\n")
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", str(key_file))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLGATE_DATA_DIR", str(data))
    redis_conn.set(key("canary", "installation-token"), canary)
    checkout = checkout_path(data, "octo/model", 7, SHA)
    checkout.mkdir(parents=True)
    (checkout / "attack.py").write_text(ATTACK)
    parts = urlsplit(redis_url)
    # An embedded Redis listens on a unix socket only: then loopback has nothing on 6379.
    host, port = (parts.hostname, parts.port) if parts.scheme == "redis" else (None, None)
    return Worker(
        canary, tmp_path, data, home, key_file, checkout, planted, host or "127.0.0.1", port or 6379
    )


@pytest.fixture
def system_targets() -> Iterator[list[Path]]:
    """Files a command tries to create in system directories and the worker's Python; removed
    afterwards should a broken sandbox have let it."""
    name = f"mlgate-canary-{uuid.uuid4().hex}"
    targets = [Path("/etc") / name, Path("/usr/local") / name, Path(sys.prefix) / name]
    yield targets
    for target in targets:
        target.unlink(missing_ok=True)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP service on the host's loopback, standing for anything the worker can reach."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"+PONG\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def _run(
    worker: Worker,
    argv: list[str],
    *,
    timeout: float = 30,
    grace: float = DEFAULT_GRACE,
    network: bool = False,
    memory: int = DEFAULT_MEMORY,
    processes: int = DEFAULT_PROCESSES,
) -> RunResult:
    env = run_environment(
        params={},
        run_id="run-1",
        repo="octo/model",
        pr=7,
        sha=SHA,
        allowed_secrets={},
        home=fresh_home(worker.checkout),
    )
    return run(
        argv,
        worker.checkout,
        env=env,
        timeout=timeout,
        grace=grace,
        network=network,
        memory=memory,
        processes=processes,
        sandbox="bwrap",
    )


def _files_holding(root: Path, needle: str) -> set[Path]:
    found = set()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.add(path)
    return found


def _with_marker(marker: str) -> list[int]:
    """Processes anywhere on the host with `marker` as an argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if marker.encode() in argv and state != "Z":
                found.append(int(entry.name))
    return found


def _marker() -> str:
    return f"300.{uuid.uuid4().int % 10**9:09d}"


# -- the canaries ---------------------------------------------------------------------------


def test_a_hostile_command_finds_no_secret_and_leaves_nothing_behind(
    worker: Worker, redis_conn: redis.Redis, listener: int, system_targets: list[Path]
) -> None:
    argv = [
        sys.executable,
        "attack.py",
        str(worker.home),
        str(worker.data),
        str(worker.key_file),
        worker.redis_host,
        str(worker.redis_port),
        str(listener),
        *map(str, system_targets),
    ]
    result = _run(worker, argv)
    log = result.log
    assert result.exit_code == 0 and "attack finished" in log, log
    # Its own PID namespace: the sandbox's init, the command, nothing of the host's.
    assert int(log.split("pids visible: ")[1].split()[0]) <= 3
    assert f"loopback {worker.redis_port}: ConnectionRefusedError" in log
    assert f"loopback {listener}: ConnectionRefusedError" in log
    assert "key file: FileNotFoundError" in log
    assert "data dir parent: ['data']" in log
    assert "wrote /" not in log and log.count("read-only:") == 3
    variants = [worker.canary, worker.canary[::-1], worker.canary.encode().hex()]
    variants.append(base64.b64encode(worker.canary.encode()).decode()[:20])
    for variant in variants:
        assert variant not in log
    assert worker.canary.encode() not in (worker.checkout / "loot.bin").read_bytes()
    # The canary is where the test put it, and nowhere else: not in the checkout, the run's
    # HOME, a private /tmp left behind, nor a file the command wrote anywhere else.
    assert _files_holding(worker.root, worker.canary) == worker.planted
    assert not (worker.home / ".gitconfig").exists()
    assert (home_path(worker.checkout) / ".gitconfig").read_text() == "[user]\n\tname = planted\n"
    assert not list(worker.checkout.parent.glob("*.tmp-*"))
    assert not any(target.exists() for target in system_targets)
    assert redis_conn.get(key("canary", "installation-token")) == worker.canary.encode()


def test_the_commands_own_home_is_writable_and_the_workers_is_not_visible(
    worker: Worker,
) -> None:
    script = (
        'echo planted > "$HOME/.gitconfig"; echo "home=$HOME"; '
        f'ls -A "{worker.home}" 2>&1; cat "{worker.home}/.netrc" 2>&1; true'
    )
    result = _run(worker, ["sh", "-c", script])
    assert result.exit_code == 0
    private_home = worker.checkout.with_name(worker.checkout.name + ".home")
    assert f"home={private_home}\n" in result.log
    assert (private_home / ".gitconfig").read_text() == "planted\n"
    assert "No such file or directory" in result.log and worker.canary not in result.log
    assert not (worker.home / ".gitconfig").exists()


def test_processes_that_leave_the_session_die_with_the_run(worker: Worker) -> None:
    markers = [_marker() for _ in range(4)]
    script = textwrap.dedent(
        f"""
        import os, subprocess, time
        subprocess.Popen(["setsid", "sleep", "{markers[0]}"])
        subprocess.Popen(["setsid", "-f", "sleep", "{markers[1]}"])
        subprocess.Popen(["nohup", "sleep", "{markers[2]}"], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.fork() == 0:  # the classic daemon: fork, setsid, fork again
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "{markers[3]}"])
            os._exit(0)
        time.sleep(0.5)
        argvs = [open(f"/proc/{{p}}/cmdline").read().split("\\0") for p in os.listdir("/proc")
                 if p.isdigit()]
        alive = sum(a[0].endswith("sleep") and a[1] in {markers!r} for a in argvs)
        print("daemons alive:", alive)
        """
    )
    result = _run(worker, [sys.executable, "-c", script])
    assert result.exit_code == 0 and "daemons alive: 4" in result.log, result.log
    for marker in markers:
        assert _with_marker(marker) == [], marker


def test_a_timed_out_run_leaves_no_process_either(worker: Worker) -> None:
    marker = _marker()
    script = f"setsid sleep {marker} & trap '' TERM; while :; do sleep 1; done"
    result = _run(worker, ["sh", "-c", script], timeout=1, grace=0.5)
    assert result.timed_out and result.exit_code == -9
    assert _with_marker(marker) == []


def test_a_killed_worker_takes_its_sandbox_with_it(worker: Worker) -> None:
    # rq ends a job past its timeout with SIGKILL: no finally block of the runner runs then.
    marker = _marker()
    job = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bot.runs.runner import run, run_environment
        checkout = Path({str(worker.checkout)!r})
        env = run_environment(params={{}}, run_id="r", repo="octo/model", pr=7, sha={SHA!r},
                              allowed_secrets={{}}, home=checkout)
        run(["sh", "-c", "setsid sleep {marker} & echo started; wait"], checkout, env=env,
            timeout=60, sandbox="bwrap")
        """
    )
    horse = subprocess.Popen(
        [sys.executable, "-c", job], cwd=Path(__file__).parents[2], stdout=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while not _with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _with_marker(marker), "the sandboxed sleep never started"
    finally:
        horse.kill()
        horse.wait()
        assert horse.stdout is not None
        horse.stdout.close()
    deadline = time.monotonic() + 5
    while _with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _with_marker(marker) == []


def test_the_process_limit_stops_a_command_forking(worker: Worker) -> None:
    script = textwrap.dedent(
        """
        import os, time
        children = 0
        try:
            while children < 1000:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as e:
            print("fork failed:", e.errno)
        print("children:", children)
        """
    )
    result = _run(worker, [sys.executable, "-c", script], processes=64)
    assert result.exit_code == 0, result.log
    assert "fork failed: 11" in result.log  # EAGAIN: RLIMIT_NPROC
    children = int(result.log.split("children: ")[1].split()[0])
    # The command itself counts: at most 63 children under a limit of 64.
    assert 0 < children <= 63


def test_a_fork_bomb_is_bounded_and_the_worker_survives(worker: Worker) -> None:
    marker = f"bomb-{uuid.uuid4().hex}"
    # `sh -c SCRIPT NAME` gives every forked copy NAME as an argument to find it by.
    result = _run(worker, ["sh", "-c", "b() { b | b & }; b; wait", marker], timeout=3, grace=0.5)
    assert result.duration < 10
    assert _with_marker(marker) == []
    # The worker can still start processes, and the next run gets the whole limit again.
    assert subprocess.run(["true"], check=False).returncode == 0
    assert _run(worker, ["sh", "-c", "echo after"]).log == "after\n"


def test_the_memory_limit_stops_a_large_allocation(worker: Worker) -> None:
    code = (
        "small = bytearray(32 * 1024**2); print('32 MiB: ok', flush=True)\n"
        "big = bytearray(1024**3); print('1 GiB: ok')"
    )
    result = _run(worker, [sys.executable, "-c", code], memory=512 * 1024**2)
    assert "32 MiB: ok" in result.log and "1 GiB: ok" not in result.log
    assert "MemoryError" in result.log and result.exit_code == 1
    roomy = _run(worker, [sys.executable, "-c", code])  # the default, 4 GiB
    assert roomy.exit_code == 0 and "1 GiB: ok" in roomy.log


def test_network_is_off_unless_the_step_turns_it_on(worker: Worker, listener: int) -> None:
    code = (
        "import socket, sys\n"
        "try:\n"
        "    c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n"
        "    print('reply:', c.recv(100))\n"
        "except OSError as e:\n"
        "    print('refused:', type(e).__name__)\n"
    )
    off = _run(worker, [sys.executable, "-c", code, str(listener)])
    assert "refused: ConnectionRefusedError" in off.log
    # With network: true a run reaches what the host can, loopback included (README says so).
    on = _run(worker, [sys.executable, "-c", code, str(listener)], network=True)
    assert "reply: b'+PONG\\r\\n'" in on.log


def test_secrets_inside_a_visible_directory_are_masked(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A data directory and a key file inside a directory the sandbox shows (as /opt would be).
    system = worker.root / "system"
    data = system / "mlgate-data"
    key_file = system / "keys" / "app.pem"
    token = data / "cache" / "token"
    for path in (key_file, token):
        path.parent.mkdir(parents=True)
        path.write_text(f"{worker.canary}\n")
    (system / "tool.txt").write_text("a tool's file\n")
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", str(key_file))
    checkout = checkout_path(data, "octo/model", 1, SHA)
    checkout.mkdir(parents=True)
    tmp = checkout.with_name("tmp")
    tmp.mkdir()
    home = fresh_home(checkout)
    env = run_environment(
        params={}, run_id="r", repo="octo/model", pr=1, sha=SHA, allowed_secrets={}, home=home
    )
    script = (
        f"cat {system}/tool.txt {key_file} {token}; "
        f"ls -A {data}; echo --; ls -A {data}/checkouts/octo/model"
    )
    with confine(
        ["sh", "-c", script],
        checkout,
        home=home,
        tmp=tmp,
        network=False,
        programs=require(),
        data_dir=data,
        system_dirs=(*SYSTEM_DIRS, str(system)),
    ) as jail:
        done = subprocess.run(
            jail.argv, cwd=checkout, env=env, capture_output=True, pass_fds=jail.pass_fds
        )
    out = done.stdout.decode()
    assert "a tool's file" in out and worker.canary not in out
    assert out.splitlines()[-3:] == ["checkouts", "--", "pr-1"]
    assert "No such file or directory" in done.stderr.decode()  # the token, under the mask


# -- without a sandbox ----------------------------------------------------------------------


def test_without_bwrap_on_path_nothing_runs(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = worker.root / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(
        SandboxUnavailable, match=r"install bubblewrap, or set `MLGATE_SANDBOX=none`"
    ):
        _run(worker, ["sh", "-c", "touch ran"])
    assert not (worker.checkout / "ran").exists()


def test_a_bwrap_that_cannot_create_namespaces_is_reported_and_nothing_runs(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What bwrap says in a container whose seccomp profile forbids user namespaces.
    fake = worker.root / "fake-bin"
    fake.mkdir()
    bwrap = fake / "bwrap"
    bwrap.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    bwrap.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        _run(worker, ["sh", "-c", "touch ran"])
    assert not (worker.checkout / "ran").exists()


def test_mlgate_sandbox_none_runs_unsandboxed_and_says_so(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLGATE_SANDBOX", "none")
    env = run_environment(
        params={},
        run_id="r",
        repo="octo/model",
        pr=7,
        sha=SHA,
        allowed_secrets={},
        home=worker.home,
    )
    with caplog.at_level(logging.WARNING, logger="bot.runs.runner"):
        result = run(["cat", str(worker.key_file)], worker.checkout, env=env, timeout=10)
    # Unsandboxed, the command reads what the worker can: the opt-out is for trusted code only.
    assert result.log == f"{worker.canary}\n"
    [record] = [r for r in caplog.records if "without a sandbox" in r.getMessage()]
    assert record.levelno == logging.WARNING and "MLGATE_SANDBOX=none" in record.getMessage()


def test_mlgate_sandbox_takes_bwrap_or_none_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox_mode({}) == "bwrap"
    assert sandbox_mode({"MLGATE_SANDBOX": " none "}) == "none"
    base = {"GITHUB_WEBHOOK_SECRET": "s3cret-value", "REDIS_URL": "redis://127.0.0.1:6379/7"}
    assert Settings.from_env(base).sandbox == "bwrap"
    assert Settings.from_env({**base, "MLGATE_SANDBOX": "none"}).sandbox == "none"
    for value in ("off", "docker", "NONE", "bwrap,none"):
        with pytest.raises(SettingsError, match="MLGATE_SANDBOX"):
            Settings.from_env({**base, "MLGATE_SANDBOX": value})
    monkeypatch.setenv("MLGATE_SANDBOX", "off")
    with pytest.raises(SettingsError, match="MLGATE_SANDBOX='off'"):
        run(["true"], Path("/"), env={}, timeout=1)


def test_bubblewrap_is_installed_where_the_tests_run() -> None:
    # CI installs it (.ci/run): the canaries above must run, never skip.
    assert shutil.which("bwrap") is not None
    require()
