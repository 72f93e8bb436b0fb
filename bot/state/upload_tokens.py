"""Per-repository metrics upload tokens: shown once when created, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

import redis

from bot.state.redis_conn import key, text

# A prefix makes a leaked token recognisable (secret scanners, log reviews) and says what it is.
TOKEN_PREFIX = "mlgate_"
# 256 random bits: nobody can guess one, so a plain SHA-256 (no salt, no slow KDF) keeps a
# Redis dump from revealing usable tokens.
TOKEN_BYTES = 32
# Enough of the hash to tell a repository's tokens apart; says nothing usable about the token.
TOKEN_ID_LENGTH = 12

# GitHub: owner (user or org) 1-39 alphanumerics or single hyphens, not starting with one;
# repository names 1-100 of letters, digits, `.`, `-`, `_`.
_REPO = re.compile(r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<name>[A-Za-z0-9._-]{1,100})")


def canonical_repo(value: str) -> str | None:
    """`owner/name` lower-cased (GitHub names are case-insensitive), or None if not one."""
    match = _REPO.fullmatch(value.strip())
    if match is None or match["name"] in (".", ".."):
        return None
    return f"{match['owner']}/{match['name']}".lower()


def require_repo(repo: str) -> str:
    """`canonical_repo` for callers that were handed a checked name; ValueError if not one."""
    canonical = canonical_repo(repo)
    if canonical is None:
        raise ValueError(f"{repo!r} is not a repository name: expected owner/name")
    return canonical


def tokens_key(repo: str) -> str:
    """A hash of token hash → {"created_at": unix time} for one repository."""
    return key("tokens", require_repo(repo))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a stored token: an id derived from its hash, and its age."""

    repo: str
    id: str
    created_at: float


def create(conn: redis.Redis, repo: str, now: float) -> str:
    """A new token for `repo`; only its hash is stored, so this is the one time it is seen.

    Earlier tokens stay valid until revoked, so a CI secret can be rotated without a gap.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    conn.hset(tokens_key(repo), hash_token(token), json.dumps({"created_at": now}))
    return token


def authenticate(conn: redis.Redis, repo: str, token: str) -> bool:
    """True when `token` is one of `repo`'s; a token of another repository is refused.

    Hashes are compared in constant time, all of them, so timing says nothing about which
    (or whether one) matched.
    """
    given = hash_token(token)
    matched = False
    for stored in conn.hkeys(tokens_key(repo)):
        matched |= hmac.compare_digest(text(stored), given)
    return matched


def list_tokens(conn: redis.Redis, repo: str | None = None) -> list[TokenInfo]:
    """The tokens of `repo`, or of every repository, oldest first within each repository."""
    if repo is not None:
        keys = [tokens_key(repo)]
    else:
        keys = sorted(text(k) for k in conn.scan_iter(match=key("tokens", "*"), count=500))
    found: list[TokenInfo] = []
    prefix = key("tokens", "")
    for token_key in keys:
        entries = [
            TokenInfo(
                repo=token_key.removeprefix(prefix),
                id=text(hashed)[:TOKEN_ID_LENGTH],
                created_at=float(json.loads(meta)["created_at"]),
            )
            for hashed, meta in conn.hgetall(token_key).items()
        ]
        found += sorted(entries, key=lambda info: (info.created_at, info.id))
    return found


def revoke(conn: redis.Redis, repo: str, token_id: str | None = None) -> int:
    """Revoke every token of `repo`, or the one whose id is `token_id`; returns how many."""
    token_key = tokens_key(repo)
    hashes = [text(h) for h in conn.hkeys(token_key)]
    if token_id is not None:
        hashes = [h for h in hashes if h[:TOKEN_ID_LENGTH] == token_id.strip().lower()]
    if not hashes:
        return 0
    return int(conn.hdel(token_key, *hashes))
