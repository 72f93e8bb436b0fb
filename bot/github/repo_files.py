"""File contents at commits, through the contents API, cached in Redis by commit and by blob sha."""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis

from bot.errors import GitHubError
from bot.github.github_client import GitHubClient
from bot.state import file_cache

log = logging.getLogger(__name__)

_FULL_SHA = re.compile(r"[0-9a-f]{40}")
# "The response includes a maximum of 300 files" (GitHub, compare two commits): a list that
# long may leave changed files out, so it tells nothing about the files it does not name.
COMPARE_FILES_LIMIT = 300
# Reads issued at once by `prefetch`: an evaluation reads a handful of files. Reads are not
# paced (bot/state/pacing.py paces writes, which stay one at a time).
READ_CONCURRENCY = 4


def git_blob_sha(content: bytes) -> str:
    """The sha git and GitHub name these bytes by as a file (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _plain(path: str) -> bool:
    """A path as GitHub lists it: relative, no empty, `.` or `..` segment."""
    if path in ("", ".", "..") or path.startswith(("/", "../")):
        return False
    return posixpath.normpath(path) == path


@dataclass(frozen=True)
class HeadChanges:
    """What a commit changed since its merge base with the base, from GitHub's comparison.

    A file the comparison does not name is the same at the commit as at the merge base. A
    changed file's content is known by its blob sha, a removed one is absent.
    """

    merge_base: str
    blobs: Mapping[str, str]
    removed: frozenset[str]
    touched: frozenset[str]
    # Folders holding a touched path: such a name is read from GitHub.
    folders: frozenset[str]

    @classmethod
    def from_comparison(cls, head: str, comparison: Mapping[str, Any]) -> HeadChanges | None:
        """The changes of `head` in the answer of `compare/{base}...{head}`; None when the
        answer cannot tell them all."""
        files = comparison.get("files")
        commit = comparison.get("merge_base_commit")
        merge_base = commit.get("sha") if isinstance(commit, dict) else None
        if not isinstance(files, list) or len(files) >= COMPARE_FILES_LIMIT:
            return None
        # A head behind its base is its own merge base: nothing to read elsewhere.
        if not isinstance(merge_base, str) or not _FULL_SHA.fullmatch(merge_base):
            return None
        if merge_base == head:
            return None
        blobs: dict[str, str] = {}
        removed: set[str] = set()
        touched: set[str] = set()
        for entry in files:
            name = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                return None
            touched.add(name)
            sha = entry.get("sha")
            if entry.get("status") == "removed":
                removed.add(name)
            elif isinstance(sha, str) and _FULL_SHA.fullmatch(sha):
                blobs[name] = sha
            previous = entry.get("previous_filename")
            if isinstance(previous, str):
                touched.add(previous)
                if entry.get("status") == "renamed":
                    removed.add(previous)
        folders = {folder for name in touched for folder in _folders(name)}
        return cls(merge_base, blobs, frozenset(removed), frozenset(touched), frozenset(folders))


def _folders(path: str) -> list[str]:
    """`a/b/c` -> [`a/b`, `a`]."""
    found = []
    folder = posixpath.dirname(path)
    while folder:
        found.append(folder)
        folder = posixpath.dirname(folder)
    return found


class RepoFiles:
    """Reads one repository's files; contents at a full sha are cached, branch names are not.

    With `follow(base, head)` first, a file `head` did not change since its merge base with
    `base` is read at that merge base (usually the base, whose files are cached), and a
    changed file whose blob was seen before anywhere in the repository needs no call.
    """

    def __init__(self, gh: GitHubClient, conn: redis.Redis, repo: str) -> None:
        self.gh, self.conn, self.repo = gh, conn, repo
        # Reads at full shas in this process, so that a file read twice asks Redis once.
        self._known: dict[tuple[str, str], bytes | None] = {}
        self._changes: dict[str, HeadChanges] = {}

    def read(self, path: str, ref: str) -> bytes | None:
        """The file's bytes at `ref`, or None when it does not exist there."""
        # A branch or a short sha may point elsewhere tomorrow; only a full sha is immutable.
        if not _FULL_SHA.fullmatch(ref):
            return self.gh.get_contents(self.repo, path, ref)
        if (path, ref) in self._known:
            return self._known[(path, ref)]
        content = self._read_at(path, ref)
        self._known[(path, ref)] = content
        return content

    def _read_at(self, path: str, sha: str) -> bytes | None:
        changes = self._changes.get(sha)
        # A name a changed path lives under may be a folder at one end: GitHub tells.
        if changes is not None and _plain(path) and path not in changes.folders:
            if path in changes.removed:
                return None
            blob = changes.blobs.get(path)
            if blob is not None:
                content = file_cache.lookup_blob(self.conn, self.repo, blob)
                if content is not None:
                    return content
            elif path not in changes.touched:
                return self.read(path, changes.merge_base)
        hit = file_cache.lookup(self.conn, self.repo, sha, path)
        if hit is not None:
            return hit.content
        content = self.gh.get_contents(self.repo, path, sha)
        blob = git_blob_sha(content) if content is not None else None
        file_cache.remember(self.conn, self.repo, sha, path, content, blob=blob)
        return content

    def follow(self, base: str, head: str) -> None:
        """Ask GitHub which files `head` changed since its merge base with `base` (one call),
        so that reads at `head` of the others cost none. Without an answer reads go on as
        before: a failed comparison costs the evaluation nothing but this call."""
        if not (_FULL_SHA.fullmatch(base) and _FULL_SHA.fullmatch(head)) or head in self._changes:
            return
        try:
            comparison = self.gh.compare(self.repo, base, head)
        except GitHubError as exc:
            log.info("comparison not used: %s", exc, extra={"repo": self.repo, "sha": head})
            return
        changes = HeadChanges.from_comparison(head, comparison)
        if changes is not None:
            self._changes[head] = changes

    def prefetch(self, reads: Iterable[tuple[str, str]]) -> None:
        """Read these (path, full sha) pairs now, all at once: `read` then finds them known.

        A read that fails here is left to `read`, so that its error comes where it would
        have without prefetching.
        """
        wanted = [
            pair
            for pair in dict.fromkeys(reads)
            if _FULL_SHA.fullmatch(pair[1]) and pair not in self._known
        ]
        if len(wanted) < 2:
            return  # nothing to overlap: `read` reads it when it is needed
        with ThreadPoolExecutor(max_workers=min(READ_CONCURRENCY, len(wanted))) as pool:
            list(pool.map(self._try_read, wanted))

    def _try_read(self, pair: tuple[str, str]) -> None:
        try:
            self.read(*pair)
        except GitHubError:
            pass
