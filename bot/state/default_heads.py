"""The default-branch head of each repository, as its last push webhook showed it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from bot.state.redis_conn import key, text

_HEADS = key("default-heads")  # hash: full_name -> DefaultHead as JSON


@dataclass(frozen=True)
class DefaultHead:
    """Where a repository's default branch points and how to reach it: what a retrain of
    the default branch head (a schedule, a monitoring breach) starts from."""

    branch: str
    sha: str
    installation_id: int
    clone_url: str = ""
    html_url: str = ""


def record(conn: redis.Redis, repo: str, head: DefaultHead) -> DefaultHead | None:
    """Remember `head` as the repository's default-branch head; returns the one it replaces."""
    with conn.pipeline() as pipe:
        pipe.hget(_HEADS, repo)
        pipe.hset(_HEADS, repo, json.dumps(asdict(head)))
        previous, _ = pipe.execute()
    return _parse(previous)


def head(conn: redis.Redis, repo: str) -> DefaultHead | None:
    """The repository's recorded default-branch head; None before its first push."""
    return _parse(conn.hget(_HEADS, repo))


def heads(conn: redis.Redis) -> dict[str, DefaultHead]:
    """Every recorded default-branch head, by repository."""
    found = {}
    for name, raw in conn.hgetall(_HEADS).items():
        parsed = _parse(raw)
        if parsed is not None:
            found[text(name)] = parsed
    return found


def forget(conn: redis.Redis, repo: str) -> None:
    conn.hdel(_HEADS, repo)


def _parse(raw: bytes | str | None) -> DefaultHead | None:
    if raw is None:
        return None
    return DefaultHead(**json.loads(text(raw)))
