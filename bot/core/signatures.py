"""HMAC-SHA256 webhook signatures as GitHub (`sha256=` + hex) and Semaphore (bare hex) send them."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

PREFIX = "sha256="
# What a SHA-256 signature looks like; anything else (another algorithm, a short or
# non-ASCII value) is refused before any comparison.
_PREFIXED = re.compile(r"sha256=([0-9a-fA-F]{64})")
_BARE_OR_PREFIXED = re.compile(r"(?:sha256=)?([0-9a-fA-F]{64})")


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def well_formed(signature: str, *, prefixed: bool) -> bool:
    """`sha256=` and 64 hex digits (GitHub); the prefix is optional where `prefixed` is False
    (Semaphore sends a bare digest)."""
    shape = _PREFIXED if prefixed else _BARE_OR_PREFIXED
    return shape.fullmatch(signature.strip()) is not None


def verify(secrets: Iterable[str], body: bytes, signature: str, *, prefixed: bool = False) -> bool:
    """True when `signature` matches `body` under any secret (several while rotating).

    The comparison is constant-time. A malformed signature (see `well_formed`) never matches.
    """
    shape = _PREFIXED if prefixed else _BARE_OR_PREFIXED
    found = shape.fullmatch(signature.strip())
    if found is None:
        return False
    given = found.group(1).lower()
    matched = False
    for secret in secrets:
        expected = sign(secret, body)[len(PREFIX) :]
        # No early exit: the time taken must not say which secret matched.
        matched |= hmac.compare_digest(expected, given)
    return matched
