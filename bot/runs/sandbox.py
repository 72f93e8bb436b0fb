"""The bubblewrap sandbox around every command a repository supplies: what it sees, its limits."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import SandboxUnavailable
from bot.settings import SANDBOX_NONE

# ARCHITECTURE.md, trust boundary: 4 GiB per process and 512 processes unless a step asks.
DEFAULT_MEMORY = 4 * 1024**3
DEFAULT_PROCESSES = 512
# Who repository code runs as when the worker is root: the kernel never applies the process
# limit (RLIMIT_NPROC) to uid 0, and root could read every file it can see.
NOBODY = 65534
HOW_TO_FIX = "install bubblewrap, or set `MLGATE_SANDBOX=none`"
# Read-only, as the host has them: the shell, the interpreters and the libraries commands use.
SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Inside SYSTEM_DIRS, but never shown: the systemd units in deploy/ read the bot's secrets here.
HIDDEN_SYSTEM_PATHS = ("/etc/mlgate",)
# A PATH directory with one of these names belongs to an installation whose parent holds what
# its programs load: a venv's lib/, pyenv's versions/ behind its shims.
_INSTALLATION_LEAVES = ("bin", "sbin", "shims")
# How long bwrap may take to report the sandbox's first process: it does so right after clone().
_START_WAIT = 5.0
# bwrap reports a command killed by signal n as 128 + n, as shells do (64 = highest signal).
_SIGNAL_BASE = 128
_MAX_SIGNAL = 64


@dataclass(frozen=True)
class Programs:
    """The host programs a sandbox is built from; `setpriv` only when the worker is root."""

    bwrap: str
    prlimit: str
    env: str
    setpriv: str | None


def locate(environ: Mapping[str, str] | None = None) -> Programs:
    """Find bwrap, prlimit and (as root) setpriv on the worker's PATH; SandboxUnavailable
    otherwise."""
    path = (os.environ if environ is None else environ).get("PATH", os.defpath)
    bwrap = shutil.which("bwrap", path=path)
    if bwrap is None:
        raise SandboxUnavailable(
            f"bubblewrap (`bwrap`) is not on PATH, so no repository command can run: {HOW_TO_FIX}"
        )
    # util-linux and coreutils are essential on Debian and Ubuntu: only odd systems lack these.
    prlimit = shutil.which("prlimit", path=path)
    env = shutil.which("env", path=path)
    setpriv = shutil.which("setpriv", path=path) if os.geteuid() == 0 else None
    if prlimit is None or env is None or (os.geteuid() == 0 and setpriv is None):
        raise SandboxUnavailable(
            "`prlimit`, `setpriv` (util-linux) or `env` (coreutils) is not on PATH: the sandbox "
            "cannot limit the command or drop its privileges; install them, or set "
            "`MLGATE_SANDBOX=none`"
        )
    return Programs(bwrap, prlimit, env, setpriv)


_working: set[Programs] = set()


def require(environ: Mapping[str, str] | None = None) -> Programs:
    """The sandbox's programs, once a trivial command ran in a sandbox like every run's.

    Raises SandboxUnavailable, with bwrap's own words, where bubblewrap is missing, too old,
    or not allowed to create namespaces (a container's seccomp profile, an AppArmor rule).
    """
    programs = locate(environ)
    if programs in _working:
        return programs
    with tempfile.TemporaryDirectory(prefix="mlgate-sandbox-probe-") as scratch:
        cwd, tmp = Path(scratch) / "checkout", Path(scratch) / "tmp"
        cwd.mkdir()
        tmp.mkdir()
        with confine(
            ["true"], cwd, home=None, tmp=tmp, network=False, programs=programs, data_dir=None
        ) as jail:
            done = subprocess.run(
                jail.argv,
                cwd=cwd,
                env={"PATH": os.defpath},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                pass_fds=jail.pass_fds,
                timeout=30,
                check=False,
            )
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise SandboxUnavailable(
            f"bubblewrap cannot create a sandbox on this host ({said}); it needs bubblewrap "
            "0.8 or later and permission to create namespaces: fix that, or set "
            "`MLGATE_SANDBOX=none`"
        )
    _working.add(programs)
    return programs


def readiness(mode: str, environ: Mapping[str, str] | None = None) -> str | None:
    """What `mlgate dev` and `mlgate demo` say about running repository code at start, under
    MLGATE_SANDBOX `mode`: None when bubblewrap works; otherwise why no code will run and how
    to fix that, or, for `none`, that code will run unsandboxed."""
    if mode == SANDBOX_NONE:
        return (
            "MLGATE_SANDBOX=none: repository commands run without a sandbox, with everything "
            "this user can read and reach; use it only where every repository's code is trusted"
        )
    try:
        require(environ)
    except SandboxUnavailable as exc:
        return f"repository code will not run here: {exc}"
    return None


# -- what the sandbox sees ------------------------------------------------------------------


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or inner.is_relative_to(outer)


def tool_dirs(path: str, hidden: Sequence[Path], data_dir: Path | None) -> list[Path]:
    """Directories shown read-only besides SYSTEM_DIRS: the worker's Python and what `path`
    names (a `bin` directory with the installation around it); never `/`, a directory holding
    anything in `hidden`, nor one inside `data_dir`."""
    candidates = [Path(sys.prefix), Path(sys.base_prefix)]
    for entry in path.split(os.pathsep):
        # A relative entry names a directory of the checkout, which is visible anyway.
        if not entry or not os.path.isabs(entry):
            continue
        directory = Path(os.path.normpath(entry))
        if directory.name in _INSTALLATION_LEAVES:
            candidates.append(directory.parent)
        candidates.append(directory)
    chosen: list[Path] = []
    data = data_dir.resolve() if data_dir is not None else None
    for candidate in sorted(set(candidates), key=lambda p: (len(p.parts), str(p))):
        if (
            len(candidate.parts) < 2
            or not candidate.is_dir()
            or any(_contains(candidate, h) for h in hidden)
            or (data is not None and _contains(data, candidate))
            or any(_contains(Path(s), candidate) for s in SYSTEM_DIRS)
            or any(_contains(c, candidate) for c in chosen)
        ):
            continue
        chosen.append(candidate)
    return chosen


def hidden_paths(data_dir: Path | None, environ: Mapping[str, str]) -> list[Path]:
    """What must stay invisible even where a visible directory holds it: the data directory
    (other runs' checkouts, cached state), the worker's HOME, the App's key file."""
    hidden = [Path(p) for p in HIDDEN_SYSTEM_PATHS]
    if data_dir is not None:
        hidden.append(data_dir.resolve())
    for value in (environ.get("HOME", ""), environ.get("GITHUB_PRIVATE_KEY_PATH", "")):
        if value and os.path.isabs(value):
            hidden.append(Path(os.path.normpath(value)))
    return hidden


def _ancestors(path: Path, made: set[Path]) -> list[str]:
    # bwrap makes missing mount points 0700 when it runs as root: nobody could not reach its
    # checkout. Existing directories are left as they are; `made` holds those already asked.
    args: list[str] = []
    for parent in reversed(path.parents):
        if len(parent.parts) > 1 and parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


@dataclass
class Jail:
    """One sandboxed command: the argv that starts it, and its processes once it runs."""

    argv: list[str]
    # The write end of bwrap's --info-fd, which only bwrap may hold once it started.
    info_write: int | None
    info_read: int | None
    _init: int | None = field(default=None, init=False)
    _pidfd: int | None = field(default=None, init=False)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """The descriptors bwrap must inherit."""
        return () if self.info_write is None else (self.info_write,)

    def started(self, outer: int) -> None:
        """Learn the sandbox's first process (its PID namespace's init) from bwrap, whose pid
        is `outer`."""
        self._close_write()
        assert self.info_read is not None
        data = b""
        until = time.monotonic() + _START_WAIT
        while time.monotonic() < until:
            if not _readable(self.info_read, until - time.monotonic()):
                break
            chunk = os.read(self.info_read, 4096)
            if not chunk:
                break
            data += chunk
            with suppress(ValueError):
                self._init = int(json.loads(data)["child-pid"])
                break
        if self._init is None:
            return  # bwrap failed before creating the sandbox: its message is in the log
        with suppress(OSError):
            self._pidfd = os.pidfd_open(self._init)
        # The pidfd pins the process: if init had already gone and its pid were reused, the
        # pid's parent would no longer be bwrap.
        if self._pidfd is not None and _parent(self._init) != outer:
            self._close_pidfd()

    def terminate(self) -> None:
        """SIGTERM every process of the sandbox but its init, which would not pass it on."""
        if self._pidfd is None or self._init is None:
            return
        for pid in _descendants(self._init):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def kill(self, wait: float) -> None:
        """SIGKILL the sandbox's init, and so every process in its namespace; wait up to
        `wait` seconds until the kernel has ended them all."""
        if self._pidfd is None:
            return
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        # A pidfd reads ready once its process exited, and an init exits only after the
        # kernel ended every other process of its namespace.
        _readable(self._pidfd, wait)
        self._close_pidfd()

    def close(self) -> None:
        """Close every descriptor the jail holds."""
        self._close_write()
        if self.info_read is not None:
            os.close(self.info_read)
            self.info_read = None
        self._close_pidfd()

    def _close_write(self) -> None:
        if self.info_write is not None:
            os.close(self.info_write)
            self.info_write = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _parent(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces and parentheses itself.
    return int(fields.rsplit(")", 1)[1].split()[1])


def _readable(fd: int, timeout: float) -> bool:
    # poll(), not select(): a worker may hold descriptors numbered above select()'s 1024.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(root, ()))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def exit_status(code: int) -> int:
    """The command's exit status from bwrap's: a signal's 128 + n becomes -n, as run() reports
    a signal everywhere."""
    if _SIGNAL_BASE < code <= _SIGNAL_BASE + _MAX_SIGNAL:
        return _SIGNAL_BASE - code
    return code


def _give_to_nobody(paths: Sequence[Path]) -> None:
    for top in paths:
        os.chown(top, NOBODY, NOBODY, follow_symlinks=False)
        for root, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                path = os.path.join(root, name)
                info = os.lstat(path)
                # A hard link could name a file outside the checkout: leave it as it is.
                if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    continue
                os.chown(path, NOBODY, NOBODY, follow_symlinks=False)


@contextmanager
def confine(
    argv: Sequence[str],
    cwd: Path,
    *,
    home: Path | None,
    tmp: Path,
    network: bool,
    programs: Programs,
    data_dir: Path | None,
    memory: int = DEFAULT_MEMORY,
    processes: int = DEFAULT_PROCESSES,
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    system_dirs: Sequence[str] = SYSTEM_DIRS,
) -> Iterator[Jail]:
    """A Jail whose argv runs `argv` in `cwd` under bubblewrap, with `tmp` as its /tmp.

    Namespaces: user (or, for a root worker, uid nobody), PID, IPC, UTS, cgroup, mount, and
    network unless `network`. Visible: `system_dirs` and tool_dirs() read-only, a fresh /proc
    and /dev, `cwd` and `home` writable, nothing of `data_dir`, the worker's HOME or the App
    key. Limits per process: `memory` bytes of address space, `processes` processes (all of
    the sandbox's user), no core files.
    """
    environ = os.environ if environ is None else environ
    cwd = cwd.resolve()
    root = programs.setpriv is not None
    info_read, info_write = os.pipe()
    jail = Jail([], info_write, info_read)
    try:
        writable = [cwd, *([home.resolve()] if home is not None else []), tmp.resolve()]
        if root:
            _give_to_nobody(writable)
        hidden = hidden_paths(data_dir, environ)
        tools = tool_dirs(
            environ.get("PATH", os.defpath) if path is None else path, hidden, data_dir
        )
        args = [
            programs.prlimit,
            f"--as={memory}",
            f"--nproc={processes}",
            "--core=0",
            "--",
            programs.bwrap,
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *(() if network else ("--unshare-net",)),
            # As root, bwrap sets up the mounts itself and setpriv then becomes nobody; as
            # anyone else it needs a user namespace, and the command may not nest another.
            *(
                ("--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
                if root
                else ("--unshare-user", "--disable-userns")
            ),
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "mlgate-sandbox",
            "--info-fd",
            str(info_write),
        ]
        # /tmp first: whatever lies under the host's /tmp (a clone's venv, a test's checkout)
        # is then mounted inside the private one instead of hidden by it.
        args += ["--bind", str(writable[-1]), "/tmp"]
        made: set[Path] = set()
        for directory in system_dirs:
            if os.path.islink(directory):
                args += ["--symlink", os.readlink(directory), directory]
            elif os.path.isdir(directory):
                args += [*_ancestors(Path(directory), made), "--ro-bind", directory, directory]
        # Masks before the tool directories: a tool kept inside a masked HOME stays usable.
        for secret in hidden:
            if not os.path.lexists(secret) or not any(
                _contains(Path(s), secret) for s in system_dirs
            ):
                continue
            if os.path.isdir(secret):
                args += ["--tmpfs", str(secret)]
            else:
                args += ["--ro-bind", "/dev/null", str(secret)]
        for tool in tools:
            args += [*_ancestors(tool, made), "--ro-bind", str(tool), str(tool)]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # /dev/shm is RAM: bounded like the memory of one process.
        args += ["--perms", "1777", "--size", str(memory), "--tmpfs", "/dev/shm"]
        for place in dict.fromkeys(writable[:-1]):
            args += [*_ancestors(place, made), "--bind", str(place), str(place)]
        args += ["--chdir", str(cwd), "--remount-ro", "/dev", "--remount-ro", "/", "--"]
        if root:
            assert programs.setpriv is not None
            args += [
                programs.setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        # bwrap sets PWD; the command gets exactly the environment it was given.
        args += [programs.env, "-u", "PWD", "--"]
        jail.argv = [*args, *argv]
        yield jail
    finally:
        jail.close()
