"""Which repositories the App is installed on, as installation events recorded them."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

_REPOS = key("installed-repos")  # hash: full_name -> installation id


def _members_key(installation_id: int) -> str:
    """A set of the repository names of one installation, to forget them when it goes."""
    return key("installation", installation_id, "repos")


def installed_repositories(conn: redis.Redis) -> dict[str, int]:
    """Every installed repository with its installation id."""
    return {text(k): int(v) for k, v in conn.hgetall(_REPOS).items()}


def record(conn: redis.Redis, installation_id: int, added: list[str], removed: list[str]) -> None:
    """Add and remove repositories of an installation, in one round trip."""
    members = _members_key(installation_id)
    with conn.pipeline() as pipe:
        for name in added:
            pipe.hset(_REPOS, name, installation_id)
            pipe.sadd(members, name)
        for name in removed:
            pipe.hdel(_REPOS, name)
            pipe.srem(members, name)
        pipe.execute()


def forget(conn: redis.Redis, installation_id: int, also: list[str]) -> int:
    """Remove every repository of a deleted (or suspended) installation, and `also` those the
    event listed; returns how many distinct names were removed."""
    removed = [text(m) for m in conn.smembers(_members_key(installation_id))] + also
    record(conn, installation_id, [], removed)
    conn.delete(_members_key(installation_id))
    return len(set(removed))


def is_installed(conn: redis.Redis, name: str) -> bool:
    """Whether an installation event recorded the repository `name` (GitHub's spelling)."""
    return bool(conn.hexists(_REPOS, name))


def installation_of(conn: redis.Redis, name: str) -> int | None:
    """The installation a repository was recorded under (names match without regard to case)."""
    wanted = name.lower()
    for repo, installation in installed_repositories(conn).items():
        if repo.lower() == wanted:
            return installation
    return None
