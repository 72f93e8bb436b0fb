"""HMAC-SHA256 webhook signatures as GitHub (`sha256=` + hex) and Semaphore (bare hex) send them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secrets: Iterable[str], body: bytes, signature: str) -> bool:
    """True when `signature` matches `body` under any secret (several while rotating).

    The comparison is constant-time, and a bare hex digest is accepted as well as `sha256=`.
    """
    given = signature.strip()
    if given.lower().startswith(PREFIX):
        given = given[len(PREFIX) :]
    matched = False
    for secret in secrets:
        expected = sign(secret, body)[len(PREFIX) :]
        # No early exit: the time taken must not say which secret matched.
        matched |= hmac.compare_digest(expected, given.lower())
    return matched
