"""Repository file contents cached in Redis, by commit and path and by blob sha: both immutable."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bot.state.redis_conn import key

# Contents at a full sha are immutable; a day covers every re-run of an evaluation.
CACHE_TTL = 24 * 3600
# Larger files are not worth keeping in Redis (metrics and DVC files are small).
CACHE_MAX_BYTES = 1024 * 1024
_PRESENT, _ABSENT = b"1", b"0"


@dataclass(frozen=True)
class CachedFile:
    """A remembered read; `content` None means the file does not exist at that commit."""

    content: bytes | None


def lookup(conn: redis.Redis, repo: str, sha: str, path: str) -> CachedFile | None:
    """The remembered read of `path` at `sha`; None when it was not remembered."""
    value = conn.get(key("file", repo, sha, path))
    if not isinstance(value, bytes):
        return None
    return CachedFile(value[1:] if value[:1] == _PRESENT else None)


def remember(
    conn: redis.Redis,
    repo: str,
    sha: str,
    path: str,
    content: bytes | None,
    *,
    blob: str | None = None,
) -> None:
    """Remember `content` (None: absent) of `path` at `sha`, and under its `blob` sha when
    given, unless it is too large to keep."""
    if content is not None and len(content) > CACHE_MAX_BYTES:
        return
    value = _ABSENT if content is None else _PRESENT + content
    pipe = conn.pipeline(transaction=False)  # one round trip for both keys
    pipe.set(key("file", repo, sha, path), value, ex=CACHE_TTL)
    if blob is not None and content is not None:
        pipe.set(key("blob", repo, blob), content, ex=CACHE_TTL)
    pipe.execute()


def lookup_blob(conn: redis.Redis, repo: str, blob: str) -> bytes | None:
    """The content of `repo`'s blob `blob` (its git object sha), if remembered."""
    value = conn.get(key("blob", repo, blob))
    return value if isinstance(value, bytes) else None
