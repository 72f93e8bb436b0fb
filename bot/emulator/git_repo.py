"""A real git repository driven through the git CLI (argv lists, never a shell)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_DIFF_CACHE_SIZE = 32
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


class GitError(RuntimeError):
    """A git command failed; the message carries its argv and stderr."""


@dataclass(frozen=True)
class TreeEntry:
    """One `git ls-tree -l` line: mode, object type, object sha, size (None for trees), path."""

    mode: str
    type: str
    sha: str
    size: int | None
    path: str


@dataclass(frozen=True)
class CommitInfo:
    """What the API shows of a commit."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


@dataclass(frozen=True)
class Identity:
    """Who wrote or committed a commit, and when (ISO 8601; None: now)."""

    name: str
    email: str
    date: str | None = None


@dataclass(frozen=True)
class TreeEdit:
    """One entry of a tree to write: `sha` None removes `path` (a file or a directory)."""

    path: str
    mode: str
    type: str
    sha: str | None


@dataclass(frozen=True)
class FileChange:
    """One file of a diff, as GitHub's diff-entry needs it."""

    status: str  # added, removed, modified, renamed, copied, changed
    filename: str
    previous_filename: str | None
    old_sha: str
    new_sha: str
    additions: int
    deletions: int
    patch: str | None  # None for binary files and pure renames, which GitHub shows without one


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # The caller's git configuration (signing, hooks, templates) must not change what the
    # emulator writes, and an inherited GIT_DIR would point every command elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LITERAL_PATHSPECS": "1",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


_CONFIG = ("-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", "-c", "core.quotepath=off")


def run_git(
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: tuple[int, ...] = (0,),
) -> tuple[int, bytes]:
    """Run `git args...` in `cwd`; return (exit code, stdout); GitError on other exit codes."""
    argv = ["git", *_CONFIG, *args]
    proc = subprocess.run(
        argv, cwd=cwd, input=stdin, capture_output=True, env=_git_env(env), check=False
    )
    if proc.returncode not in ok_codes:
        raise GitError(
            f"{' '.join(argv)} exited {proc.returncode}: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    return proc.returncode, proc.stdout


def _safe_ref(ref: str) -> bool:
    # A ref starting with "-" would be read as an option.
    return bool(ref) and not ref.startswith("-") and "\x00" not in ref


class GitRepository:
    """A non-bare repository whose work tree follows its checked-out (default) branch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_lock = threading.Lock()
        self._head_branch: str | None = None
        # Diffs between two commits never change; PR files pages and pulls/get reuse them.
        self._diffs: OrderedDict[tuple[str, str], list[FileChange]] = OrderedDict()
        self._diffs_lock = threading.Lock()
        self._memo: dict[tuple[str, str, str], str] = {}

    @classmethod
    def init(cls, path: Path, default_branch: str) -> GitRepository:
        """Create an empty repository at `path` whose HEAD is `default_branch`."""
        path.mkdir(parents=True, exist_ok=True)
        # No template: sample hooks and info files cost file-system time and serve no purpose.
        run_git(path, "init", "-q", "--template=", "-b", default_branch)
        return cls(path)

    def git(
        self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> bytes:
        """Run a git command in this repository and return its stdout."""
        return run_git(self.path, *args, stdin=stdin, env=env)[1]

    # -- refs -------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit sha `ref` (branch, tag, sha, refs/...) names, or None."""
        if not _safe_ref(ref):
            return None
        code, out = run_git(
            self.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok_codes=(0, 1, 128)
        )
        return out.decode().strip() if code == 0 else None

    def branch_sha(self, branch: str) -> str | None:
        """The tip of `refs/heads/<branch>`, or None when the branch does not exist."""
        return self.resolve(f"refs/heads/{branch}")

    def branches(self) -> list[str]:
        """Names of all local branches."""
        out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return [line for line in out.decode().splitlines() if line]

    def current_branch(self) -> str:
        """The branch HEAD points at (the emulator never switches it)."""
        if self._head_branch is None:
            self._head_branch = self.git("symbolic-ref", "--short", "HEAD").decode().strip()
        return self._head_branch

    def update_ref(self, ref: str, sha: str) -> None:
        """Point `ref` at `sha`."""
        self.git("update-ref", ref, sha)
        self._sync_worktree(ref)

    def compare_and_set(self, ref: str, sha: str, expect: str | None) -> None:
        """Point `ref` at `sha` if it points at `expect` now ("" : if it does not exist yet,
        None: whatever it points at); GitError otherwise."""
        args = ["update-ref", "--no-deref", ref, sha]
        if expect is not None:
            args.append(expect or "0" * 40)
        with self._write_lock:
            self.git(*args)
            self._sync_worktree(ref)

    def valid_ref(self, ref: str) -> bool:
        """True if git accepts `ref` as a reference name."""
        if not _safe_ref(ref):
            return False
        code, _ = run_git(self.path, "check-ref-format", ref, ok_codes=(0, 1))
        return code == 0

    def ref_target(self, ref: str) -> str | None:
        """The object `ref` (a full `refs/...` name) points at, whatever its type, or None."""
        if not _safe_ref(ref) or not ref.startswith("refs/"):
            return None
        code, out = run_git(
            self.path, "rev-parse", "--verify", "--quiet", ref, ok_codes=(0, 1, 128)
        )
        return out.decode().strip() if code == 0 else None

    def object_types(self, shas: list[str]) -> dict[str, str | None]:
        """The type (blob, tree, commit, tag) of each full sha, None where it does not exist."""
        found: dict[str, str | None] = {sha: None for sha in shas}
        candidates = [sha for sha in found if _FULL_SHA.fullmatch(sha)]
        if not candidates:
            return found
        out = self.git(
            "cat-file", "--batch-check=%(objectname) %(objecttype)",
            stdin="".join(f"{sha}\n" for sha in candidates).encode(),
        )  # fmt: skip
        for line in out.decode().splitlines():
            name, _, kind = line.partition(" ")
            if name in found and kind != "missing":
                found[name] = kind
        return found

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if commit `ancestor` is reachable from `descendant` (a fast-forward)."""
        code, _ = run_git(
            self.path, "merge-base", "--is-ancestor", ancestor, descendant, ok_codes=(0, 1)
        )
        return code == 0

    def fetch(self, source: Path, refspec: str) -> None:
        """Fetch `refspec` from the repository at `source` (another emulated repository)."""
        self.git("fetch", "-q", "--no-tags", "--update-head-ok", str(source), refspec)

    def _sync_worktree(self, ref: str) -> None:
        # The work tree shows the checked-out branch, so that `repo.path` reads like a clone.
        if ref.startswith("refs/heads/") and ref == f"refs/heads/{self.current_branch()}":
            self.git("reset", "-q", "--hard", "HEAD")

    # -- writing ----------------------------------------------------------------------------

    def commit_files(
        self,
        branch: str,
        files: Mapping[str, str | bytes | None],
        message: str,
        *,
        author_name: str,
        author_email: str,
        start_from: str | None = None,
    ) -> str:
        """Commit `files` (None deletes) on top of `branch` (or `start_from` if the branch is
        new, or no parent at all) without touching any work tree but the checked-out one."""
        # One `git fast-import` writes a single pack: loose objects for thousands of files
        # take seconds on a slow file system.
        stamp = f"{int(time.time())} +0000"
        identity = f"{author_name} <{author_email}> {stamp}"
        encoded = message.encode()
        with self._write_lock:
            current = self.branch_sha(branch)
            parent = current or (self.resolve(start_from) if start_from else None)
            stream = [
                f"commit refs/heads/{branch}\nmark :1\n".encode(),
                f"author {identity}\ncommitter {identity}\n".encode(),
                b"data %d\n%s\n" % (len(encoded), encoded),
            ]
            if parent:
                stream.append(f"from {parent}\n".encode())
            for path, content in files.items():
                name = _clean_path(path).encode()
                if content is None:
                    stream.append(b"D %s\n" % name)
                else:
                    data = content.encode() if isinstance(content, str) else content
                    stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (name, len(data), data))
            stream.append(b"\n")
            with tempfile.TemporaryDirectory(prefix="mlgate-emu-") as tmp:
                marks = Path(tmp) / "marks"
                self.git(
                    "fast-import",
                    "--quiet",
                    "--date-format=raw",
                    f"--export-marks={marks}",
                    stdin=b"".join(stream),
                )
                sha = marks.read_text().split()[1]
            self._sync_worktree(f"refs/heads/{branch}")
            return sha

    def _commit_tree(
        self, tree: str, parents: list[str], message: str, author_name: str, author_email: str
    ) -> str:
        env = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.git(*args, "-F", "-", stdin=message.encode(), env=env).decode().strip()

    def write_blob(self, data: bytes) -> str:
        """Store `data` as a blob; returns its sha."""
        return self.git("hash-object", "-w", "--stdin", stdin=data).decode().strip()

    def write_blobs(self, contents: list[bytes]) -> list[str]:
        """Store each of `contents` as a blob, in one git process; returns their shas."""
        if not contents:
            return []
        with tempfile.TemporaryDirectory(prefix="mlgate-emu-") as tmp:
            paths = []
            for i, data in enumerate(contents):
                path = Path(tmp) / str(i)
                path.write_bytes(data)
                paths.append(str(path))
            out = self.git(
                "hash-object", "-w", "--no-filters", "--stdin-paths",
                stdin="".join(f"{p}\n" for p in paths).encode(),
            )  # fmt: skip
        return out.decode().split()

    def write_tree(self, base_tree: str | None, edits: list[TreeEdit]) -> str:
        """A tree: `base_tree` (or nothing) with `edits` applied, paths with slashes making
        the directories between; returns its sha. The objects named must exist."""
        with tempfile.TemporaryDirectory(prefix="mlgate-emu-") as tmp:
            # A private index: the work tree and its index stay as they are.
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base_tree:
                self.git("read-tree", base_tree, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            lines = []
            # A removal, or a tree put in a path's place, clears the path and all below it.
            cleared = [_clean_path(e.path) for e in edits if e.sha is None or e.type == "tree"]
            if cleared:
                specs = [spec for path in cleared for spec in (path, f"{path}/")]
                listed = self.git("ls-files", "-z", "--", *specs, env=env).decode()
                # Mode 0 removes an index entry.
                lines += [f"0 {'0' * 40}\t{path}\n" for path in listed.split("\x00") if path]
            for edit in edits:
                if edit.sha is not None and edit.type != "tree":
                    # --replace: a file where a directory was (or the reverse) replaces it.
                    lines.append(f"{edit.mode} {edit.sha}\t{_clean_path(edit.path)}\n")
            if lines:
                self.git(
                    "update-index", "--add", "--replace", "--index-info",
                    stdin="".join(lines).encode(), env=env,
                )  # fmt: skip
            for edit in edits:
                if edit.sha is not None and edit.type == "tree":
                    self.git("read-tree", f"--prefix={_clean_path(edit.path)}/", edit.sha, env=env)
            return self.git("write-tree", env=env).decode().strip()

    def create_commit(
        self, tree: str, parents: list[str], message: str, author: Identity, committer: Identity
    ) -> str:
        """A commit object of `tree` on `parents` (no ref moves); returns its sha. Names,
        addresses and message are stored as given: `commit-tree` would trim a name's
        trailing dot and GitHub keeps it."""
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        lines.append(f"author {_signature(author)}")
        lines.append(f"committer {_signature(committer)}")
        raw = "\n".join(lines) + "\n\n" + message
        return (
            self.git("hash-object", "-t", "commit", "-w", "--stdin", stdin=raw.encode())
            .decode()
            .strip()
        )

    def tree_entries(self, tree: str) -> list[TreeEntry]:
        """The entries directly in tree `tree`."""
        return _parse_ls_tree(self.git("ls-tree", "-z", "-l", tree))

    def mergeable(self, base: str, head: str) -> bool:
        """True if merging commit `head` into commit `base` has no conflict."""
        key = ("mergeable", base, head)
        if key in self._memo:
            return self._memo[key] == "1"
        # Exit 1: conflicts; unrelated histories end in an error, which GitHub calls dirty too.
        code, _ = run_git(
            self.path, "merge-tree", "--write-tree", "--name-only", base, head, ok_codes=(0, 1, 128)
        )
        self._remember(key, "1" if code == 0 else "0", base, head)
        return code == 0

    def create_branch(self, name: str, sha: str) -> None:
        """Create (or move) branch `name` at `sha`."""
        with self._write_lock:
            self.git("update-ref", f"refs/heads/{name}", sha)
            self._sync_worktree(f"refs/heads/{name}")

    def merge(
        self, base_branch: str, head_sha: str, message: str, *, author_name: str, author_email: str
    ) -> str:
        """Create a merge commit of `head_sha` into `base_branch` (GitHub's "merge" method,
        always a merge commit); GitError on conflicts."""
        with self._write_lock:
            base_sha = self.branch_sha(base_branch)
            if base_sha is None:
                raise GitError(f"branch {base_branch} does not exist")
            code, out = run_git(
                self.path, "merge-tree", "--write-tree", base_sha, head_sha, ok_codes=(0, 1)
            )
            if code == 1:
                raise GitError(f"merging {head_sha} into {base_branch} conflicts")
            tree = out.decode().splitlines()[0].strip()
            sha = self._commit_tree(tree, [base_sha, head_sha], message, author_name, author_email)
            self.git("update-ref", f"refs/heads/{base_branch}", sha, base_sha)
            self._sync_worktree(f"refs/heads/{base_branch}")
            return sha

    # -- reading ----------------------------------------------------------------------------

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The tree entry at `path` in `commit`, or None."""
        path = path.strip("/")
        if not path:
            tree = self.git("rev-parse", f"{commit}^{{tree}}").decode().strip()
            return TreeEntry("040000", "tree", tree, None, "")
        out = self.git("ls-tree", "-z", "-l", "--full-tree", commit, "--", path)
        for entry in _parse_ls_tree(out):
            if entry.path == path:
                return entry
        return None

    def list_dir(self, commit: str, path: str) -> list[TreeEntry]:
        """Entries of the directory `path` ("" for the root) in `commit`."""
        path = path.strip("/")
        args = ["ls-tree", "-z", "-l", "--full-tree", commit]
        if path:
            args += ["--", f"{path}/"]
        return _parse_ls_tree(self.git(*args))

    def blob(self, sha: str) -> bytes:
        """The content of blob `sha`."""
        return self.git("cat-file", "blob", sha)

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two commits, or None for unrelated histories."""
        key = ("merge-base", a, b)
        if key in self._memo:
            return self._memo[key] or None
        code, out = run_git(self.path, "merge-base", a, b, ok_codes=(0, 1))
        found = out.decode().strip() if code == 0 else ""
        self._remember(key, found, a, b)
        return found or None

    def count(self, exclude: str, include: str) -> int:
        """Number of commits reachable from `include` but not from `exclude`."""
        key = ("count", exclude, include)
        if key in self._memo:
            return int(self._memo[key])
        value = self.git("rev-list", "--count", f"{exclude}..{include}").decode().strip()
        self._remember(key, value, exclude, include)
        return int(value)

    def _remember(self, key: tuple[str, str, str], value: str, *commits: str) -> None:
        # Answers about full commit shas never change; answers about ref names do.
        if all(_FULL_SHA.fullmatch(c) for c in commits):
            self._memo[key] = value

    def commit_info(self, sha: str) -> CommitInfo | None:
        """The commit `sha`, or None if it names no commit."""
        resolved = self.resolve(sha)
        if resolved is None:
            return None
        found = self.log(None, resolved, limit=None, max_count=1)
        return found[0] if found else None

    def log(
        self,
        exclude: str | None,
        include: str,
        limit: int | None = None,
        max_count: int | None = None,
    ) -> list[CommitInfo]:
        """Commits reachable from `include` and not from `exclude`, oldest first."""
        fmt = "%H%x1f%T%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%B%x1e"
        rev = f"{exclude}..{include}" if exclude else include
        args = ["log", "--topo-order", "--reverse", f"--format={fmt}"]
        if max_count is not None:
            # --reverse applies after --max-count: the newest commits, oldest first.
            args.append(f"--max-count={max_count}")
        out = self.git(*args, rev)
        commits = []
        for record in out.decode("utf-8", "replace").split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            f = record.split("\x1f")
            commits.append(
                CommitInfo(
                    sha=f[0],
                    tree=f[1],
                    parents=tuple(f[2].split()),
                    author_name=f[3],
                    author_email=f[4],
                    author_date=f[5],
                    committer_name=f[6],
                    committer_email=f[7],
                    committer_date=f[8],
                    message=f[9].rstrip("\n"),
                )
            )
        return commits[:limit] if limit is not None else commits

    def diff(self, old: str, new: str) -> list[FileChange]:
        """Files changed from commit `old` to commit `new` (full shas), with rename detection."""
        key = (old, new)
        with self._diffs_lock:
            if key in self._diffs:
                self._diffs.move_to_end(key)
                return list(self._diffs[key])
        changes = self._diff(old, new)
        if not (_FULL_SHA.fullmatch(old) and _FULL_SHA.fullmatch(new)):
            return changes
        with self._diffs_lock:
            self._diffs[key] = changes
            while len(self._diffs) > _DIFF_CACHE_SIZE:
                self._diffs.popitem(last=False)
        return list(changes)

    def _diff(self, old: str, new: str) -> list[FileChange]:
        common = ("--no-color", "--no-ext-diff", "--no-textconv", "-M")
        raw = self.git("diff", *common, "--raw", "-z", "--no-abbrev", old, new)
        numstat = self.git("diff", *common, "--numstat", "-z", old, new)
        patch = self.git("diff", *common, old, new)
        entries = _parse_raw(raw)
        counts = _parse_numstat(numstat)
        patches = _split_patch(patch)
        changes = []
        for i, (code, old_sha, new_sha, src, dst) in enumerate(entries):
            additions, deletions = counts[i] if i < len(counts) else (0, 0)
            status = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied"}
            changes.append(
                FileChange(
                    status=status.get(code, "changed"),
                    filename=dst,
                    previous_filename=src if code in ("R", "C") else None,
                    old_sha=old_sha,
                    new_sha=new_sha,
                    additions=additions,
                    deletions=deletions,
                    patch=patches[i] if i < len(patches) else None,
                )
            )
        return changes

    def diff_text(self, old: str, new: str) -> str:
        """The unified diff from `old` to `new`."""
        return self.git("diff", "--no-color", "--no-ext-diff", "-M", old, new).decode(
            "utf-8", "replace"
        )


def _signature(who: Identity) -> str:
    """`Name <email> seconds offset`, the identity line of a commit object."""
    if any(c in who.name + who.email for c in "<>\n\x00"):
        raise ValueError(f"not a valid identity: {who.name!r} <{who.email!r}>")
    if who.date is None:
        moment = datetime.now(UTC)
    else:
        moment = datetime.fromisoformat(who.date.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return f"{who.name} <{who.email}> {int(moment.timestamp())} {zone}"


def _clean_path(path: str) -> str:
    name = path.strip("/")
    parts = name.split("/")
    # fast-import would need C-style quoting for these; repositories of ML projects don't.
    if (
        not name
        or "\n" in name
        or name.startswith('"')
        or any(p in ("", ".", "..", ".git") for p in parts)
    ):
        raise ValueError(f"not a valid repository path: {path!r}")
    return name


def _parse_ls_tree(out: bytes) -> list[TreeEntry]:
    entries = []
    for record in out.decode("utf-8", "replace").split("\x00"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split()
        entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size), path))
    return entries


def _parse_raw(out: bytes) -> list[tuple[str, str, str, str, str]]:
    """`git diff --raw -z` into (status letter, old sha, new sha, old path, new path)."""
    tokens = out.decode("utf-8", "replace").split("\x00")
    entries = []
    i = 0
    while i < len(tokens) and tokens[i]:
        meta = tokens[i].lstrip(":").split()
        old_sha, new_sha, code = meta[2], meta[3], meta[4][0]
        if code in ("R", "C"):
            src, dst = tokens[i + 1], tokens[i + 2]
            i += 3
        else:
            src = dst = tokens[i + 1]
            i += 2
        entries.append((code, old_sha, new_sha, src, dst))
    return entries


def _parse_numstat(out: bytes) -> list[tuple[int, int]]:
    """`git diff --numstat -z` into (additions, deletions) per file; binary files count 0."""
    tokens = out.decode("utf-8", "replace").split("\x00")
    counts = []
    i = 0
    while i < len(tokens) and tokens[i]:
        added, deleted, path = tokens[i].split("\t", 2)
        # A rename leaves the path empty and gives old and new path as the next two tokens.
        i += 3 if path == "" else 1
        counts.append((0 if added == "-" else int(added), 0 if deleted == "-" else int(deleted)))
    return counts


def _split_patch(out: bytes) -> list[str | None]:
    """Per-file hunks of a unified diff, in diff order; None where a file has no hunk."""
    sections: list[list[str]] = []
    for line in out.decode("utf-8", "replace").split("\n"):
        if line.startswith("diff --git "):
            sections.append([])
        elif sections:
            sections[-1].append(line)
    patches: list[str | None] = []
    for lines in sections:
        start = next((i for i, line in enumerate(lines) if line.startswith("@@")), None)
        if start is None:
            patches.append(None)
            continue
        hunk = lines[start:]
        while hunk and hunk[-1] == "":
            hunk.pop()
        patches.append("\n".join(hunk))
    return patches
