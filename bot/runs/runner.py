"""Hardened local runner: fetch exactly one commit into a checkout and run a command in it."""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bot import logs
from bot.core.config import PARAM_PREFIX
from bot.errors import (
    FetchError,
    RunEnvironmentError,
    RunnerError,
    SettingsError,
    UnsafeCheckoutPath,
)
from bot.runs.sandbox import DEFAULT_MEMORY, DEFAULT_PROCESSES, Jail, confine, exit_status, require
from bot.settings import DEFAULT_DATA_DIR, SANDBOX_NONE, check_sandbox_mode, sandbox_mode

log = logging.getLogger(__name__)

# The server setting naming the variables of the worker's environment that trusted runs see.
RUNNER_SECRETS_VARIABLE = "MLGATE_RUNNER_SECRETS"
DEFAULT_LOG_LIMIT = 1_000_000
# Below this, head, tail and the cut marker leave nothing worth reading.
MIN_LOG_LIMIT = 1024
# Seconds between SIGTERM and SIGKILL when a command outlives its timeout.
DEFAULT_GRACE = 5.0
DEFAULT_FETCH_TIMEOUT = 600.0
LANG = "C.UTF-8"

# fullmatch, not ^...$: `$` also matches before a trailing newline.
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# A full object name (SHA-1, or SHA-256 repositories): anything shorter is ambiguous, and a
# value starting with `-` would reach git as an option.
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One run's directory inside its checkout_path() leaf; a uuid4 hex unless the caller names it.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_LEAF = re.compile(r"pr-[1-9][0-9]*|sha-(?:[0-9a-f]{40}|[0-9a-f]{64})")
_RESERVED = ("PATH", "HOME", "LANG")
_CLONE_SCHEMES = ("https", "http", "file")

_CHUNK = 65536
# How often a running command is checked for having exited, in seconds.
_POLL = 0.05
# How long to keep reading after the final SIGKILL: only a process that left the group
# (setsid) can still hold the pipe then, and it must not hold the worker.
_DRAIN = 2.0
# Bytes of log_limit kept for the cut marker and the runner's own notes.
_RESERVE = 256
# The cut moves to a line end this close to it: tokens never span lines, so none is split.
_LINE_SLACK = 4096
# Shorter fragments of a secret at the cut reveal nothing; hiding them would eat real output.
_MIN_FRAGMENT = 4
_HEAD_SHARE = 4  # the head gets 1/4 of the budget: the tail, where errors are, gets the rest
_FETCH_LOG_LIMIT = 65536
# What git may inherit from the worker: proxies and CA bundles, never the bot's secrets nor
# its HOME, where a configuration file could redirect a fetch or run a helper.
_GIT_INHERITED = (
    "PATH",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
)


# -- checkouts ------------------------------------------------------------------------------


def checkout_path(
    data_dir: Path, repo: str, pr: int | None, sha: str, *, run_id: str | None = None
) -> Path:
    """A checkout of `repo` for PR `pr`, or for commit `sha` when `pr` is None (baselines),
    of its own: each call without `run_id` names a new directory, so that two runs (a
    baseline and a deploy of one commit, say) never share or delete each other's tree.

    Pass it to fetch(), and to remove_checkout() when done; fetch() also removes the
    directories of finished runs of the same PR or commit. Raises UnsafeCheckoutPath unless
    `repo` is a plain owner/name, `run_id` letters, digits, '_' and '-', and the resolved path
    stays inside `data_dir`.
    """
    parts = repo.split("/")
    if not _REPO.fullmatch(repo) or any(part in (".", "..") for part in parts):
        raise UnsafeCheckoutPath(
            f"repository {repo!r} is not owner/name (letters, digits, '_', '.', '-'): "
            "refusing to build a checkout path from it"
        )
    if pr is None:
        if not _SHA.fullmatch(sha):
            raise UnsafeCheckoutPath(f"{sha!r} is not a full lowercase commit sha")
        leaf = f"sha-{sha}"
    elif isinstance(pr, bool) or pr < 1:
        raise UnsafeCheckoutPath(f"pull request number {pr!r} is not a positive integer")
    else:
        leaf = f"pr-{pr}"
    if run_id is None:
        run_id = uuid.uuid4().hex
    elif not _RUN_ID.fullmatch(run_id):
        raise UnsafeCheckoutPath(f"run id {run_id!r} is not letters, digits, '_' and '-'")
    root = data_dir.resolve()
    # GitHub names are case-insensitive: one directory per repository, however it is spelt.
    path = (root / "checkouts" / parts[0].lower() / parts[1].lower() / leaf / run_id).resolve()
    if not path.is_relative_to(root):
        raise UnsafeCheckoutPath(f"the checkout of {repo} would be {path}, outside {root}")
    return path


def home_path(checkout: Path) -> Path:
    """HOME for commands run in `checkout`: beside it, so the work tree never sees it."""
    return checkout.with_name(checkout.name + ".home")


def _tmp_prefix(checkout: Path) -> str:
    return checkout.name + ".tmp-"


def _lock_path(checkout: Path) -> Path:
    return checkout.with_name(checkout.name + ".lock")


# Checkouts this process is using, each with its flock()ed lock file: the lock goes when the
# process does (rq runs each job in a process of its own), so a crashed run's checkout is
# removed by the next fetch of the same PR or commit.
_claims: dict[Path, int] = {}


def _is_run_directory(checkout: Path) -> bool:
    return bool(_RUN_ID.fullmatch(checkout.name) and _LEAF.fullmatch(checkout.parent.name))


def _claim(dest: Path) -> None:
    if dest in _claims or not _is_run_directory(dest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(dest)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunnerError(
                f"checkout {dest} is in use by another run: refusing to fetch into it"
            ) from None
        # A pruning process may have removed the file between open() and flock(): a lock
        # on a file no longer there protects nothing.
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _claims[dest] = fd
    _prune(dest)


def _prune(dest: Path) -> None:
    """Remove what finished runs left beside `dest`, and what an mlgate from before per-run
    checkouts left in its place (a checkout directly in the leaf, its `.home` beside it)."""
    leaf = dest.parent
    _remove_tree(leaf.with_name(leaf.name + ".home"))
    for lock in sorted(leaf.glob("*.lock")):
        run_id = lock.name[: -len(".lock")]
        if run_id == dest.name or not _RUN_ID.fullmatch(run_id):
            continue
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a run in progress
        try:
            _remove_run(leaf / run_id)
        finally:
            os.close(fd)
    # A run creates its lock before its directories, so an entry without a lock is left over.
    for entry in list(leaf.iterdir()):
        owner = entry.name.split(".", 1)[0]
        if not entry.name.endswith(".lock") and not (leaf / f"{owner}.lock").exists():
            _remove_tree(entry)


def _remove_run(checkout: Path) -> None:
    _remove_tree(checkout)
    _remove_tree(home_path(checkout))
    for tmp in checkout.parent.glob(_tmp_prefix(checkout) + "*"):
        _remove_tree(tmp)
    _lock_path(checkout).unlink(missing_ok=True)


def remove_checkout(checkout: Path) -> None:
    """Delete `checkout` with its HOME and lock: call it once the run's files were read."""
    _remove_run(checkout)
    fd = _claims.pop(checkout, None)
    if fd is not None:
        os.close(fd)


def fresh_home(checkout: Path) -> Path:
    """Create an empty home_path(checkout); what an earlier run left there must not leak into
    the next one (an untrusted run could plant configuration for a trusted one)."""
    home = home_path(checkout)
    _remove_tree(home)
    home.mkdir(parents=True)
    return home


def fetch(
    clone_url: str,
    sha: str,
    dest: Path,
    token: str | None,
    *,
    timeout: float = DEFAULT_FETCH_TIMEOUT,
) -> None:
    """Make `dest` (a checkout_path(): whatever is there is deleted) a checkout of exactly
    commit `sha` of `clone_url`, and nothing else.

    The token reaches git only through the environment of each git command, never the
    checkout's configuration or the remote URL. Raises FetchError (secrets redacted) when
    git fails or runs out of `timeout` seconds.
    """
    if not _SHA.fullmatch(sha):
        raise RunnerError(f"{sha!r} is not a full lowercase commit sha: refusing to fetch it")
    _check_clone_url(clone_url)
    _claim(dest)
    # An earlier command could write .git (hooks, url.insteadOf, credential helpers) and so
    # steal the next fetch's token: every fetch starts from an empty directory, which also
    # leaves nothing for `git clean` to do.
    _remove_tree(dest)
    dest.mkdir(parents=True)
    secrets = _token_secrets(token)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="mlgate-git-home-") as home:
        env = _git_environment(token, Path(home))
        for args in (
            ("init", "-q", "--template="),
            ("remote", "add", "origin", clone_url),
            ("fetch", "-q", "--depth", "1", "--no-tags", "--recurse-submodules=no", "origin", sha),
            ("checkout", "-q", "--force", "--detach", "FETCH_HEAD"),
        ):
            _git(args, dest, env, deadline, secrets)
        head = _git(("rev-parse", "HEAD"), dest, env, deadline, secrets).strip().splitlines()
    if not head or head[-1] != sha:
        raise RunnerError(f"git checked out {head[-1:]} instead of {sha}: refusing the checkout")


def _check_clone_url(clone_url: str) -> None:
    parts = urlsplit(clone_url)
    if parts.scheme not in _CLONE_SCHEMES:
        raise RunnerError(
            f"clone URL {logs.redact(clone_url)!r}: expected an https:// (or file://) URL"
        )
    if parts.username is not None or parts.password is not None:
        # A credential in the URL would be stored in .git/config for the command to read.
        raise RunnerError("the clone URL carries credentials: pass the token separately")


def _git_environment(token: str | None, home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in _GIT_INHERITED if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env |= {"HOME": str(home), "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    config: list[tuple[str, str]] = []
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    # An empty helper empties the list: no helper of the worker's user may answer a 401 with
    # that user's own credentials.
    config.append(("credential.helper", ""))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _token_secrets(token: str | None) -> tuple[str, ...]:
    if not token:
        return ()
    return (token, base64.b64encode(f"x-access-token:{token}".encode()).decode())


def _git(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], deadline: float, secrets: Sequence[str]
) -> str:
    command = logs.redact(" ".join(("git", *args)), secrets)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(command, -1, "the fetch ran out of time before this step")
    # git is the bot's own program, run outside the sandbox: it needs the network and the
    # token, and the checkout it writes holds nothing the command has touched yet.
    result = _execute(
        ["git", *args], cwd, env, remaining, _FETCH_LOG_LIMIT, tuple(secrets), 1.0, None
    )
    if result.timed_out:
        raise FetchError(command, result.exit_code, f"timed out; {result.log}")
    if result.exit_code != 0:
        raise FetchError(command, result.exit_code, result.log)
    return result.log


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
        return
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        # A command may leave read-only directories behind, which rmtree cannot empty.
        os.chmod(path, stat.S_IRWXU)
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                sub = os.path.join(root, name)
                if not os.path.islink(sub):
                    os.chmod(sub, stat.S_IRWXU)
        shutil.rmtree(path)


# -- the environment of a run ---------------------------------------------------------------


def _reserved(name: str) -> bool:
    return name in _RESERVED or name.upper().startswith("MLGATE_")


def allowed_secrets(names: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` that MLGATE_RUNNER_SECRETS (`names`, comma-separated) lets
    trusted runs see; a listed name that `environ` lacks is left out.

    Raises SettingsError for a name that is not a variable name or that the runner sets itself.
    """
    allowed: dict[str, str] = {}
    for raw in names.split(","):
        name = raw.strip()
        if not name:
            continue
        if not _ENV_NAME.fullmatch(name):
            raise SettingsError(
                f"{RUNNER_SECRETS_VARIABLE}: {name!r} is not an environment variable name; "
                "expected a comma-separated list such as HF_TOKEN,WANDB_API_KEY"
            )
        if _reserved(name):
            raise SettingsError(
                f"{RUNNER_SECRETS_VARIABLE}: {name} is set by the runner itself; "
                "remove it from the list"
            )
        if name in environ:
            allowed[name] = environ[name]
    return allowed


def run_environment(
    *,
    params: Mapping[str, str],
    run_id: str,
    repo: str,
    pr: int | None,
    sha: str,
    allowed_secrets: Mapping[str, str],
    home: Path,
    path: str | None = None,
) -> dict[str, str]:
    """The whole environment of a run: PATH, HOME, LANG, MLGATE_PARAM_<NAME> per parameter,
    MLGATE_RUN_ID/REPO/PR/SHA and `allowed_secrets` (pass {} for untrusted runs).

    `path` defaults to the worker's own PATH, where the tools the command needs are.
    Raises RunEnvironmentError for a parameter that cannot be an environment variable.
    """
    env: dict[str, str] = {}
    for name, value in allowed_secrets.items():
        if not _ENV_NAME.fullmatch(name) or _reserved(name):
            raise RunEnvironmentError(f"secret {name!r} cannot be passed to a run under that name")
        env[name] = value
    env |= {
        "PATH": os.environ.get("PATH", os.defpath) if path is None else path,
        "HOME": str(home),
        "LANG": LANG,
        "MLGATE_RUN_ID": run_id,
        "MLGATE_REPO": repo,
        "MLGATE_PR": "" if pr is None else str(pr),
        "MLGATE_SHA": sha,
    }
    for name, value in params.items():
        if not _ENV_NAME.fullmatch(name):
            raise RunEnvironmentError(
                f"parameter {name!r}: a name is letters, digits and '_', not starting with a digit"
            )
        key = PARAM_PREFIX + name.upper()
        if key in env:
            raise RunEnvironmentError(f"parameters {name!r} and another both become {key}")
        if "\x00" in value:
            raise RunEnvironmentError(f"parameter {name!r}: a value cannot contain a NUL byte")
        env[key] = value
    return env


# -- the log --------------------------------------------------------------------------------


class LogCapture:
    """The first and last bytes of a stream within a byte budget, however long the stream."""

    def __init__(self, limit: int = DEFAULT_LOG_LIMIT) -> None:
        if limit < MIN_LOG_LIMIT:
            raise ValueError(f"log limit {limit} is below the minimum of {MIN_LOG_LIMIT} bytes")
        budget = limit - _RESERVE
        self._head_limit = budget // _HEAD_SHARE
        self._tail_limit = budget - self._head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream."""
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if len(chunk) >= self._tail_limit:
            self._tail = bytearray(chunk[-self._tail_limit :])
        elif chunk:
            self._tail += chunk
            excess = len(self._tail) - self._tail_limit
            if excess > 0:
                del self._tail[:excess]

    @property
    def truncated(self) -> bool:
        """Whether bytes between head and tail were dropped."""
        return self.total > len(self._head) + len(self._tail)

    def text(self, secrets: Iterable[str] = ()) -> str:
        """The kept output as text, secrets redacted, with a marker where bytes were cut."""
        secrets = tuple(secrets)
        if not self.truncated:
            return logs.redact(_decode(bytes(self._head + self._tail)), secrets)
        head, tail = bytes(self._head), bytes(self._tail)
        newline = head.rfind(b"\n")
        if newline >= 0 and len(head) - newline <= _LINE_SLACK:
            head = head[: newline + 1]
        newline = tail.find(b"\n")
        if 0 <= newline < _LINE_SLACK:
            tail = tail[newline + 1 :]
        cut = self.total - len(head) - len(tail)
        # redact() knows the registered secrets but cannot see a half of one at the cut.
        known = {s for s in (*secrets, *logs._secrets) if len(s) > _MIN_FRAGMENT}
        head_text, tail_text = _hide_fragments(
            logs.redact(_decode(head), secrets), logs.redact(_decode(tail), secrets), known
        )
        separator = "" if not head_text or head_text.endswith("\n") else "\n"
        marker = f"[... {cut:,} bytes of output cut by mlgate ...]\n"
        return f"{head_text}{separator}{marker}{tail_text}"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _hide_fragments(head: str, tail: str, secrets: Iterable[str]) -> tuple[str, str]:
    """Mask a secret's beginning at the end of `head` and its end at the start of `tail`."""
    for secret in secrets:
        for size in range(len(secret) - 1, _MIN_FRAGMENT - 1, -1):
            if head.endswith(secret[:size]):
                head = head[:-size] + logs.REDACTED
                break
        for size in range(len(secret) - 1, _MIN_FRAGMENT - 1, -1):
            if tail.startswith(secret[-size:]):
                tail = logs.REDACTED + tail[size:]
                break
    return head, tail


# -- running a command ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """How a command ended.

    `exit_code` is negative when a signal ended the command (a timeout ends in -15 or -9),
    127 when its executable was not found and 126 when it could not be started otherwise.
    (In the sandbox, an exit status of 128 + n reads as signal n, as a shell reports it.)
    `log` is stdout and stderr merged, capped, secrets redacted, with the runner's notes.
    """

    exit_code: int
    timed_out: bool
    duration: float
    log: str
    truncated: bool


class _Pipe:
    """The read end of the command's output, read without ever blocking past a timeout."""

    def __init__(self, fd: int, capture: LogCapture) -> None:
        self._fd = fd
        self._capture = capture
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)
        self.eof = False

    def read(self, timeout: float) -> None:
        timeout = max(0.0, timeout)
        if self.eof:
            time.sleep(timeout)
            return
        if self._selector.select(timeout):
            chunk = os.read(self._fd, _CHUNK)
            if chunk:
                self._capture.feed(chunk)
            else:
                self.eof = True
                self._selector.unregister(self._fd)

    def drain(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while not self.eof and time.monotonic() < until:
            self.read(until - time.monotonic())

    def close(self) -> None:
        self._selector.close()


def _exited(pid: int) -> bool:
    # WNOWAIT leaves the exited command a zombie until Popen.wait() reaps it: its pid, and
    # so its process group id, cannot be reused meanwhile, and killpg() cannot hit a stranger.
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str],
    timeout: float,
    log_limit: int = DEFAULT_LOG_LIMIT,
    secrets: Iterable[str] = (),
    grace: float = DEFAULT_GRACE,
    network: bool = False,
    memory: int = DEFAULT_MEMORY,
    processes: int = DEFAULT_PROCESSES,
    sandbox: str | None = None,
    data_dir: Path | None = None,
) -> RunResult:
    """Run `argv` (never through a shell) in `cwd` with exactly `env`, for at most `timeout`
    seconds; then SIGTERM, after `grace` seconds SIGKILL, to every process it started.

    Under `sandbox` `bwrap` (default: MLGATE_SANDBOX) the command runs in a bubblewrap
    sandbox (see sandbox.confine): only `cwd`, `env["HOME"]` and a private /tmp writable,
    nothing of `data_dir` (default: MLGATE_DATA_DIR) else visible, no network unless
    `network`, at most `memory` bytes of address space per process and `processes`
    processes. Raises SandboxUnavailable, before anything ran, where it cannot be set up.
    Under `none` it runs unsandboxed, and says so in the worker's log.

    Processes the command leaves behind when it exits are killed too. The log keeps the
    head and the tail of the output within `log_limit` bytes, with `secrets` (pass the
    token and the allowed secrets' values), registered secrets and token-shaped strings
    redacted.
    """
    secrets = tuple(secrets)
    mode = sandbox_mode() if sandbox is None else check_sandbox_mode(sandbox)
    if mode == SANDBOX_NONE:
        log.warning(
            "running a repository command without a sandbox (MLGATE_SANDBOX=none)",
            extra={"cwd": str(cwd), "command": argv[0] if argv else ""},
        )
        return _execute(argv, cwd, env, timeout, log_limit, secrets, grace, None)
    programs = require()
    if not argv:
        return RunResult(126, False, 0.0, "[mlgate] no command to run\n", False)
    unrunnable = _unrunnable(argv, cwd, env)
    if unrunnable is not None:
        code, note = unrunnable
        return RunResult(code, False, 0.0, logs.redact(note, secrets), False)
    if data_dir is None:
        data_dir = Path(os.environ.get("MLGATE_DATA_DIR", DEFAULT_DATA_DIR))
    cwd = cwd.resolve()
    # The private /tmp lives on disk beside the checkout, not in RAM, and goes with the run.
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(cwd), dir=cwd.parent))
    try:
        with confine(
            argv,
            cwd,
            home=Path(env["HOME"]) if "HOME" in env else None,
            tmp=tmp,
            network=network,
            programs=programs,
            data_dir=data_dir,
            memory=memory,
            processes=processes,
            path=env.get("PATH", os.defpath),
        ) as jail:
            return _execute(jail.argv, cwd, env, timeout, log_limit, secrets, grace, jail)
    finally:
        _remove_tree(tmp)


def _unrunnable(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str] | None:
    """What run() would report for a command that cannot start: inside the sandbox bwrap would
    only say "execvp" and exit 1."""
    if not cwd.is_dir():
        return 126, f"[mlgate] cannot run {argv[0]!r}: working directory {cwd} does not exist\n"
    if "/" in argv[0]:
        path = cwd / argv[0]
        runnable = path.is_file() and os.access(path, os.X_OK)
        exists = path.exists()
    else:
        # As execvp() searches: the first executable file on PATH, relative entries from cwd.
        search = os.pathsep.join(
            d if os.path.isabs(d) else str(cwd / d)
            for d in env.get("PATH", os.defpath).split(os.pathsep)
        )
        runnable = shutil.which(argv[0], path=search) is not None
        exists = shutil.which(argv[0], mode=os.F_OK, path=search) is not None
    if runnable:
        return None
    if exists:
        return 126, f"[mlgate] cannot run {argv[0]!r}: permission denied (is it executable?)\n"
    return 127, (
        f"[mlgate] cannot run {argv[0]!r}: command not found (PATH={env.get('PATH', '')})\n"
    )


def _execute(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log_limit: int,
    secrets: tuple[str, ...],
    grace: float,
    jail: Jail | None,
) -> RunResult:
    capture = LogCapture(log_limit)
    started = time.monotonic()
    if not argv:
        return RunResult(126, False, 0.0, "[mlgate] no command to run\n", False)
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session and process group: a timeout can then stop every process the
            # command started, and none of them can signal the worker's group.
            start_new_session=True,
            pass_fds=jail.pass_fds if jail is not None else (),
        )
    except (OSError, ValueError) as exc:
        code, note = _not_started(argv, cwd, env, exc)
        return RunResult(code, False, time.monotonic() - started, logs.redact(note, secrets), False)
    assert process.stdout is not None
    pipe = _Pipe(process.stdout.fileno(), capture)
    timed_out = False
    try:
        if jail is not None:
            jail.started(process.pid)
        deadline = started + timeout
        while not _exited(process.pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            pipe.read(min(_POLL, remaining))
        if timed_out:
            if jail is not None:
                jail.terminate()
            else:
                _signal_group(process.pid, signal.SIGTERM)
            grace_end = time.monotonic() + grace
            while not (pipe.eof and _exited(process.pid)) and time.monotonic() < grace_end:
                pipe.read(min(_POLL, grace_end - time.monotonic()))
    finally:
        # Also on a normal exit, and when the worker's job is interrupted: nothing the
        # command started may outlive it.
        if jail is not None:
            jail.kill(_DRAIN)
        _signal_group(process.pid, signal.SIGKILL)
        pipe.drain(_DRAIN)
        pipe.close()
        process.stdout.close()
        exit_code = process.wait()
    if jail is not None:
        exit_code = exit_status(exit_code)
    duration = time.monotonic() - started
    log_text = capture.text(secrets)
    if timed_out:
        log_text += (
            f"\n[mlgate] timed out after {timeout:g} s: stopped the command and every process "
            "it started\n"
        )
    return RunResult(exit_code, timed_out, duration, log_text, capture.truncated)


def _not_started(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], exc: Exception
) -> tuple[int, str]:
    if isinstance(exc, FileNotFoundError):
        if exc.filename is not None and str(exc.filename) == str(cwd):
            return 126, f"[mlgate] cannot run {argv[0]!r}: working directory {cwd} does not exist\n"
        return 127, (
            f"[mlgate] cannot run {argv[0]!r}: command not found (PATH={env.get('PATH', '')})\n"
        )
    if isinstance(exc, PermissionError):
        return 126, f"[mlgate] cannot run {argv[0]!r}: permission denied (is it executable?)\n"
    if isinstance(exc, OSError):
        return 126, f"[mlgate] cannot run {argv[0]!r}: {exc.strerror or exc}\n"
    return 126, f"[mlgate] cannot run {argv[0]!r}: {exc}\n"
