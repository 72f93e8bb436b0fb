"""GitHub App authentication as GitHub checks it: App JWTs and installation tokens."""

from __future__ import annotations

import functools
import json
import secrets
import string
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# "Generating a JSON Web Token (JWT) for a GitHub App": exp at most 10 minutes after iat;
# GitHub tolerates clocks up to 60 s ahead, which is why clients backdate iat by 60 s.
JWT_MAX_LIFETIME = 600
JWT_CLOCK_SKEW = 60

# GitHub's messages (docs.github.com and what its API answers), verbatim.
MSG_UNDECODABLE = "A JSON web token could not be decoded"
MSG_EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time "
    "at which the assertion expires"
)
MSG_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
MSG_IAT = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
MSG_NO_INTEGRATION = "Integration not found"

TOKEN_PREFIX = "ghs_"
# GitHub Apps' user access tokens, from the OAuth web flow.
USER_TOKEN_PREFIX = "ghu_"
_TOKEN_ALPHABET = string.ascii_letters + string.digits


def new_private_key() -> tuple[str, Any]:
    """A new 2048-bit RSA key: (PKCS#1 PEM text as GitHub hands it out, public key object)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


@functools.cache
def generate_private_key() -> tuple[str, Any]:
    """The emulator's own App key, generated once per process: it takes up to a second on a
    busy machine, and emulators in one process gain nothing from distinct keys."""
    return new_private_key()


def new_installation_token() -> str:
    """`ghs_` and 36 random alphanumerics, the shape of GitHub's installation tokens."""
    return TOKEN_PREFIX + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))


def new_user_token() -> str:
    """`ghu_` and 36 random alphanumerics, the shape of a GitHub App's user access tokens."""
    return USER_TOKEN_PREFIX + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))


def unverified_issuer(token: str) -> str | None:
    """The `iss` claim of a JWT, read without checking anything: which App's key checks it."""
    try:
        payload = jwt.PyJWS().decode(token, options={"verify_signature": False})
        claims = json.loads(payload)
    except (jwt.InvalidTokenError, ValueError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return None if issuer is None or isinstance(issuer, bool) else str(issuer)


def looks_like_jwt(value: str) -> bool:
    """True for a three-part dotted token (a JWT), which GitHub routes to App authentication."""
    return value.count(".") == 2


def check_app_jwt(
    token: str, public_key: Any, app_id: str, now: float, client_id: str | None = None
) -> str | None:
    """None if `token` authenticates as the App at time `now`, else GitHub's 401 message."""
    # Only the signature is PyJWT's job: it refuses a numeric `iss`, which GitHub accepts,
    # and the claims must fail with GitHub's messages, not PyJWT's.
    try:
        payload = jwt.PyJWS().decode(token, public_key, algorithms=["RS256"])
        claims = json.loads(payload)
    except (jwt.InvalidTokenError, ValueError):
        return MSG_UNDECODABLE
    if not isinstance(claims, dict):
        return MSG_UNDECODABLE
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + JWT_CLOCK_SKEW:
        return MSG_IAT
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        return MSG_EXPIRED
    if exp - iat > JWT_MAX_LIFETIME:
        return MSG_TOO_FAR
    # GitHub accepts the App id as a number or a string, and the client id as `iss`.
    if str(claims.get("iss")) not in {str(app_id), client_id}:
        return MSG_NO_INTEGRATION
    return None
