"""File contents at commits, through the contents API, cached in Redis: a sha never changes."""

from __future__ import annotations

import re

import redis

from bot.github.github_client import GitHubClient
from bot.state.redis_conn import key

# Contents at a full sha are immutable; a day covers every re-run of an evaluation.
CACHE_TTL = 24 * 3600
# Larger files are not worth keeping in Redis (metrics and DVC files are small).
CACHE_MAX_BYTES = 1024 * 1024
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_PRESENT, _ABSENT = b"1", b"0"


class RepoFiles:
    """Reads one repository's files; contents at a full sha are cached, branch names are not."""

    def __init__(self, gh: GitHubClient, conn: redis.Redis, repo: str) -> None:
        self.gh, self.conn, self.repo = gh, conn, repo

    def read(self, path: str, ref: str) -> bytes | None:
        """The file's bytes at `ref`, or None when it does not exist there."""
        cacheable = bool(_FULL_SHA.fullmatch(ref))
        cache_key = key("file", self.repo, ref, path)
        if cacheable:
            cached = self.conn.get(cache_key)
            if isinstance(cached, bytes):
                return cached[1:] if cached[:1] == _PRESENT else None
        content = self.gh.get_contents(self.repo, path, ref)
        if cacheable and (content is None or len(content) <= CACHE_MAX_BYTES):
            value = _ABSENT if content is None else _PRESENT + content
            self.conn.set(cache_key, value, ex=CACHE_TTL)
        return content
