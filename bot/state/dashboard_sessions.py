"""Dashboard sign-ins (the user's GitHub token stays here, never in the cookie) and, per user,
the repositories they may see, cached briefly."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

import redis

from bot.state.redis_conn import key

# GitHub expires a GitHub App's user access tokens after eight hours; a sign-in ends with it.
SESSION_TTL = 8 * 3600
# Long enough that clicking through a user's repositories asks GitHub once; short enough that
# a revoked access shows within a minute.
REPOSITORIES_TTL = 60


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, with the user access token the dashboard reads GitHub with."""

    login: str
    token: str
    at: float


@dataclass(frozen=True)
class VisibleRepository:
    """A repository both the App and the user can read, with the user's role on it."""

    full_name: str
    installation_id: int
    private: bool
    role: str  # admin, maintain, write, triage or read


def _session_key(session_id: str) -> str:
    return key("dashboard", "session", session_id)


def _repositories_key(login: str) -> str:
    return key("dashboard", "repositories", login.lower())


def start(conn: redis.Redis, signed_in: SignedIn) -> str:
    """A new session for `signed_in`; returns its id (unguessable, for the signed cookie)."""
    session_id = secrets.token_urlsafe(32)
    conn.set(_session_key(session_id), json.dumps(asdict(signed_in)), ex=SESSION_TTL)
    return session_id


def find(conn: redis.Redis, session_id: str) -> SignedIn | None:
    """The sign-in of `session_id`; None when it ended, expired or never was."""
    raw = conn.get(_session_key(session_id))
    if raw is None:
        return None
    try:
        return SignedIn(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def end(conn: redis.Redis, session_id: str) -> None:
    conn.delete(_session_key(session_id))


def cached_repositories(conn: redis.Redis, login: str) -> list[VisibleRepository] | None:
    """What `login` could see a moment ago; None when it is not cached."""
    raw = conn.get(_repositories_key(login))
    if raw is None:
        return None
    try:
        return [VisibleRepository(**item) for item in json.loads(raw)]
    except (ValueError, TypeError):
        return None


def remember_repositories(
    conn: redis.Redis, login: str, repositories: list[VisibleRepository]
) -> None:
    value = json.dumps([asdict(r) for r in repositories])
    conn.set(_repositories_key(login), value, ex=REPOSITORIES_TTL)


def forget_repositories(conn: redis.Redis, login: str) -> None:
    """Ask GitHub again on the next page: a new sign-in may see other repositories."""
    conn.delete(_repositories_key(login))
