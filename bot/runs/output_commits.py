"""A run's changed outputs, read from its work tree and written through the Git Data API:
the retrain loop's commits and `/promote`'s (one mechanism for both)."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.changes import matches
from bot.core.retrain_outputs import (
    EXECUTABLE,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_FILES,
    REGULAR,
    SYMLINK,
    BlobFile,
    OutputChange,
    output_changes,
)
from bot.errors import RunnerError
from bot.github.github_client import GitHubClient, JSONDict

# A run leaving more entries than this in its work tree is not walked to the end.
MAX_WALKED = 1_000_000
GIT_TIMEOUT = 120.0


@dataclass
class OutputCapture:
    """The outputs one run changes: the commit's files read before it ran (`before`), the
    work tree's after the retrain (`after`). `problem` says why they cannot be committed."""

    patterns: tuple[str, ...]
    base_tree: str = ""
    at_commit: dict[str, BlobFile] = field(default_factory=dict)
    changes: tuple[OutputChange, ...] = ()
    problem: str | None = None

    def before(self, checkout: Path, sha: str) -> None:
        self.base_tree, listing = commit_listing(checkout, sha)
        self.at_commit = {p: f for p, f in listing.items() if matches(p, self.patterns)}

    def after(self, checkout: Path) -> None:
        found, problem = work_tree_outputs(checkout, self.patterns)
        if problem is not None:
            self.problem = problem
            return
        self.changes = output_changes(self.at_commit, found, self.patterns)


def tree_entries(gh: GitHubClient, repo: str, changes: Sequence[OutputChange]) -> list[JSONDict]:
    """Tree entries of the changes: text inline (no request of its own), other bytes as
    blobs, deletions as a null sha."""
    entries: list[JSONDict] = []
    for change in changes:
        entry: JSONDict = {"path": change.path, "mode": change.mode, "type": "blob"}
        if change.content is None:
            entry["sha"] = None
        elif change.mode != SYMLINK and (inline := _utf8(change.content)) is not None:
            entry["content"] = inline
        else:
            entry["sha"] = gh.create_blob(repo, change.content)
        entries.append(entry)
    return entries


def _utf8(content: bytes) -> str | None:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def commit_listing(checkout: Path, sha: str) -> tuple[str, dict[str, BlobFile]]:
    """The commit's tree sha and every file in it (path → mode and blob sha), read from the
    fresh checkout's git before anything ran there."""
    with tempfile.TemporaryDirectory(prefix="mlgate-git-home-") as home:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": home,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LANG": "C",
        }

        def git(*args: str) -> bytes:
            try:
                done = subprocess.run(
                    ["git", *args],
                    cwd=checkout,
                    env=env,
                    capture_output=True,
                    timeout=GIT_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise RunnerError(f"git {args[0]} took over {GIT_TIMEOUT:.0f} s") from exc
            if done.returncode != 0:
                message = " ".join(done.stderr.decode("utf-8", "replace").split())
                raise RunnerError(f"git {args[0]} failed on {sha[:7]}: {message}")
            return done.stdout

        tree = git("rev-parse", "--verify", f"{sha}^{{tree}}").decode().strip()
        listing = git("ls-tree", "-r", "-z", "--full-tree", sha)
    files: dict[str, BlobFile] = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, blob = meta.decode().split(" ")
        if kind == "blob":
            files[path.decode("utf-8", "surrogateescape")] = BlobFile(mode, blob)
    return tree, files


def work_tree_outputs(
    checkout: Path, patterns: Sequence[str]
) -> tuple[dict[str, tuple[str, bytes]], str | None]:
    """The files matching `patterns` in the work tree after the retrain (path → git mode and
    content; a symbolic link as its target, never followed), or what stops them from being
    committed."""
    found: dict[str, tuple[str, bytes]] = {}
    walked = 0
    for top, dirs, names in os.walk(checkout):
        if ".git" in dirs:
            dirs.remove(".git")  # git never tracks a path through a `.git` directory
        walked += len(dirs) + len(names)
        if walked > MAX_WALKED:
            return {}, f"the retrain left over {MAX_WALKED:,} files to look through"
        for name in names:
            full = Path(top) / name
            relative = full.relative_to(checkout).as_posix()
            if not matches(relative, patterns):
                continue
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                return {}, f"output {relative!r} has a name that is not UTF-8"
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                found[relative] = (SYMLINK, os.fsencode(os.readlink(full)))
            elif stat.S_ISREG(info.st_mode):
                if info.st_size > MAX_OUTPUT_BYTES:
                    return {}, (
                        f"output `{relative}` is {info.st_size:,} bytes, over the "
                        f"{MAX_OUTPUT_BYTES:,} a retrain commits through the API; "
                        "track it with DVC and commit its pointer"
                    )
                # O_NOFOLLOW: a link swapped in since the lstat is not read through.
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as handle:
                    content = handle.read(MAX_OUTPUT_BYTES + 1)
                mode = EXECUTABLE if info.st_mode & stat.S_IXUSR else REGULAR
                found[relative] = (mode, content)
            if len(found) > MAX_OUTPUT_FILES:
                return {}, (
                    f"the retrain left over {MAX_OUTPUT_FILES} files matching retrain.outputs; "
                    "narrow the patterns"
                )
    return found, None
