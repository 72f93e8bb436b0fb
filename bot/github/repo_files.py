"""File contents at commits, through the contents API, cached in Redis: a sha never changes."""

from __future__ import annotations

import re

import redis

from bot.github.github_client import GitHubClient
from bot.state import file_cache

_FULL_SHA = re.compile(r"[0-9a-f]{40}")


class RepoFiles:
    """Reads one repository's files; contents at a full sha are cached, branch names are not."""

    def __init__(self, gh: GitHubClient, conn: redis.Redis, repo: str) -> None:
        self.gh, self.conn, self.repo = gh, conn, repo

    def read(self, path: str, ref: str) -> bytes | None:
        """The file's bytes at `ref`, or None when it does not exist there."""
        # A branch or a short sha may point elsewhere tomorrow; only a full sha is immutable.
        cacheable = bool(_FULL_SHA.fullmatch(ref))
        if cacheable:
            hit = file_cache.lookup(self.conn, self.repo, ref, path)
            if hit is not None:
                return hit.content
        content = self.gh.get_contents(self.repo, path, ref)
        if cacheable:
            file_cache.remember(self.conn, self.repo, ref, path, content)
        return content
