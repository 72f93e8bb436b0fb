"""`mlgate report`'s side of the comparison: a local git repository read at two revisions."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO

from bot.core.changes import classify
from bot.core.comparison import compare_revisions_metrics
from bot.core.config import load_config
from bot.core.evaluation_result import Evaluation
from bot.core.setting_hints import not_evaluated
from bot.errors import LocalGitError, NotAGitRepository, UnknownRevision

# Where DVC keeps its cache unless `.dvc/config` says otherwise (`cache.dir`).
DEFAULT_DVC_CACHE = ".dvc/cache"


def _complaint(stderr: bytes) -> str:
    """git's message on one line (it may span several, with hints)."""
    return " ".join(stderr.decode("utf-8", "replace").split()) or "no message"


class GitRepo:
    """One local repository: resolves revisions, lists changed paths, reads files at commits.

    Files are read from the object database (`git cat-file --batch`, one process for all
    reads and for resolving revisions), never from the working tree, so uncommitted changes
    are not seen. Every git call is an argv list; nothing goes through a shell.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._batch: subprocess.Popen[bytes] | None = None
        # A commit's files never change: each (path, sha) is read from git once.
        self._cache: dict[tuple[str, str], bytes | None] = {}
        self._listings: dict[tuple[str, str], list[str]] = {}
        # Listings started ahead (`start_listings`), so that their git processes run together.
        self._started: dict[tuple[str, str], subprocess.Popen[bytes]] = {}

    @classmethod
    def open(cls, directory: Path) -> GitRepo:
        """The repository `directory` is in; `NotAGitRepository` says why when there is none."""
        try:
            result = subprocess.run(
                ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
                capture_output=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise NotAGitRepository("git is not installed (no `git` on PATH)") from exc
        if result.returncode != 0:
            raise NotAGitRepository(
                f"{directory} is not in a git repository: {_complaint(result.stderr)}"
            )
        return cls(Path(os.fsdecode(result.stdout.rstrip(b"\n"))))

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", *args], cwd=self.root, capture_output=True, check=False)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["git", *args], cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def resolve(self, rev: str) -> str:
        """The full sha of the commit `rev` names; `UnknownRevision` with git's words if none."""
        # The batch process resolves names as `git rev-parse` does (one lookup, no process of
        # its own); only a name it cannot take (a newline) or cannot resolve goes to
        # rev-parse, whose words the error quotes.
        if "\n" not in rev:
            found = self._object(f"{rev}^{{commit}}")
            if found is not None and found[1] == b"commit":
                return found[0].decode()
        # --end-of-options: a revision such as `--output=x` is a name, never an option.
        result = self._git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
        if result.returncode != 0:
            raise UnknownRevision(rev, f"git: {_complaint(result.stderr)}")
        return result.stdout.decode().strip()

    def has_commits(self) -> bool:
        """Whether the repository has any commit at all (a fresh `git init` has none)."""
        return bool(self._git("rev-list", "-n", "1", "--all").stdout.strip())

    @staticmethod
    def _files_argv(rev: str) -> tuple[str, ...]:
        return ("ls-tree", "-r", "-z", "--name-only", "--full-tree", rev)

    @staticmethod
    def _changed_argv(base: str, head: str) -> tuple[str, ...]:
        return (
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--no-relative",
            f"{base}...{head}",
            "--",
        )

    def start_listings(self, base: str, head: str) -> None:
        """Start `files` of both revisions and `changed` at once (full shas): their git
        processes then run side by side instead of one after the other."""
        for key, argv in (
            (("\0files", base), self._files_argv(base)),
            (("\0files", head), self._files_argv(head)),
            (("\0changed", f"{base}...{head}"), self._changed_argv(base, head)),
        ):
            if key not in self._listings and key not in self._started:
                self._started[key] = self._start(*argv)

    def _listing(self, key: tuple[str, str], argv: tuple[str, ...], what: str) -> list[str]:
        if key not in self._listings:
            started = self._started.pop(key, None)
            if started is not None:
                stdout, stderr = started.communicate()
                code = started.returncode
            else:
                result = self._git(*argv)
                stdout, stderr, code = result.stdout, result.stderr, result.returncode
            if code != 0:
                raise LocalGitError(f"cannot list {what}: git says: {_complaint(stderr)}")
            self._listings[key] = [os.fsdecode(p) for p in stdout.split(b"\0") if p]
        return self._listings[key]

    def files(self, rev: str) -> list[str]:
        """Every file path committed at `rev` (a full sha), from the repository root."""
        return self._listing(("\0files", rev), self._files_argv(rev), f"the files of {rev}")

    def changed(self, base: str, head: str) -> list[str]:
        """Paths that differ from the merge base of `base` and `head` to `head`.

        That is what a pull request lists (`git diff base...head`). Renames are listed as
        the removed and the added path, whatever `diff.renames` says, so that both sides'
        DVC files are read; paths are from the repository root whatever `diff.relative` says.
        """
        return list(
            self._listing(
                ("\0changed", f"{base}...{head}"),
                self._changed_argv(base, head),
                f"the changes from {base} to {head}",
            )
        )

    def read(self, path: str, rev: str) -> bytes | None:
        """The file's bytes at commit `rev` (a full sha), or None when it is not a file there."""
        key = (path, rev)
        if key not in self._cache:
            one = "\n" in path
            self._cache[key] = self._read_one(path, rev) if one else self._read_batch(path, rev)
        return self._cache[key]

    def _read_one(self, path: str, rev: str) -> bytes | None:
        # --batch reads one name per line; a name holding a newline needs its own process.
        result = self._git("cat-file", "blob", f"{rev}:{path}")
        return result.stdout if result.returncode == 0 else None

    def _read_batch(self, path: str, rev: str) -> bytes | None:
        found = self._object(f"{rev}:{path}")
        return found[2] if found is not None and found[1] == b"blob" else None

    def _object(self, name: str) -> tuple[bytes, bytes, bytes] | None:
        """(oid, type, content) of the object `name` names, or None when there is none."""
        if self._batch is None:
            self._batch = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                cwd=self.root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        stdin, stdout = self._pipes()
        stdin.write(os.fsencode(name) + b"\n")
        stdin.flush()
        header = stdout.readline()
        if not header:
            raise LocalGitError(f"`git cat-file --batch` stopped while reading {name}")
        # "<oid> <type> <size>\n<content>\n", or "<name> missing" / "<name> ambiguous".
        fields = header.split()
        if len(fields) != 3 or not fields[2].isdigit():
            return None
        content = stdout.read(int(fields[2]))
        stdout.read(1)
        return fields[0], fields[1], content

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self._batch is not None and self._batch.stdin and self._batch.stdout
        return self._batch.stdin, self._batch.stdout

    def close(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            with batch:  # closes the pipes (git exits at the end of its input) and waits
                pass
        started, self._started = self._started, {}
        for process in started.values():
            process.communicate()  # a listing nobody asked for after all: reap it

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _dvc_config_value(text: str, section: str, option: str) -> str | None:
    """One `option = value` of a `[section]` in DVC's INI-style config (configobj format)."""
    current = None
    value = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().strip("'\"")
        elif current == section and "=" in line:
            name, _, rest = line.partition("=")
            if name.strip() == option:
                value = rest.strip().strip("'\"")
    return value


class DvcCache:
    """The working checkout's DVC cache: objects read by their path under the cache folder.

    The folder is `cache.dir` of `.dvc/config.local`, else of `.dvc/config`, relative to
    `.dvc/` as DVC resolves it; else `.dvc/cache`. Objects are content-addressed, so one
    cache serves every revision.
    """

    def __init__(self, root: Path) -> None:
        self.folder = root / DEFAULT_DVC_CACHE
        for name in ("config.local", "config"):
            config = root / ".dvc" / name
            try:
                text = config.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            configured = _dvc_config_value(text, "cache", "dir")
            if configured:
                self.folder = (root / ".dvc" / configured).resolve()
                break

    def read(self, object_path: str) -> bytes | None:
        try:
            return (self.folder / object_path).read_bytes()
        except OSError:
            return None


@dataclass(frozen=True)
class LocalComparison:
    """`mlgate report`'s result: the evaluation, and the revisions whose metrics failed to load.

    `failed` names them as the user wrote them (base first), as `dvc metrics diff` does;
    `messages` says, per revision and file, what went wrong.
    """

    evaluation: Evaluation
    failed: Sequence[str] = ()
    messages: Sequence[str] = ()


def compare_local(repo: GitRepo, base: str, head: str) -> LocalComparison:
    """The bot's comparison of `head` with `base`, read from git as `dvc metrics diff` reads.

    Every DVC file of each revision counts, metrics kept in DVC's cache are read from the
    local cache, and a file that does not load reads as missing (null values) with its
    reason in the notes and `messages`; the verdict is then the gates'. The configuration
    is read at `base`. Raises `UnknownRevision`, `LocalGitError` and `RepoConfigError`.
    """
    base_sha, head_sha = repo.resolve(base), repo.resolve(head)
    repo.start_listings(base_sha, head_sha)
    config = load_config(repo.read, base_sha)
    changed = repo.changed(base_sha, head_sha)
    cache = DvcCache(repo.root)
    comparison = compare_revisions_metrics(
        repo.read,
        config,
        changed,
        base_sha,
        head_sha,
        base_ref=base,
        list_files=repo.files,
        cache=cache.read,
        tolerant=True,
    )
    evaluation = comparison.evaluation
    classified = classify(changed, config.triggers, comparison.head.paths)
    notes = list(evaluation.notes)
    if config.metrics.source != "git":
        run = f" (`{shlex.join(config.evaluate.run)}`)" if config.evaluate.run else ""
        notes.append(
            f"`metrics.source: {config.metrics.source}`: the bot evaluates the head{run}; "
            "this report compares the committed metrics files."
        )
    skipped = None
    if not classified.relevant:
        # The bot's words for such a PR: it completes mlgate/quality as skipped, no comment.
        skipped = not_evaluated(len(changed), config.triggers)
    # Keyed by name like DVC's `errors` dict: the same name twice is one revision.
    errors = {base: comparison.base.failed}
    errors[head] = comparison.head.failed
    failed = [name for name, broken in errors.items() if broken]
    messages = [
        f"{name}: {message}"
        for name, side in ((base, comparison.base), (head, comparison.head))
        for message in side.messages()
    ]
    return LocalComparison(replace(evaluation, notes=notes, skipped=skipped), failed, messages)


def compare_revisions(repo: GitRepo, base: str, head: str) -> Evaluation:
    """The evaluation of `compare_local` alone."""
    return compare_local(repo, base, head).evaluation
