"""Repository permission levels, as GitHub's collaborator permission API reports them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# read < triage < write < maintain < admin (docs/using.md, Commands on a pull request).
LEVELS = ("none", "read", "triage", "write", "maintain", "admin")


def level(answer: Mapping[str, Any]) -> str:
    """The level of a `GET …/collaborators/{user}/permission` answer.

    `role_name` is exact for built-in roles; a custom role falls back to `permission`, which
    GitHub reduces to admin, write, read or none.
    """
    role = str(answer.get("role_name") or "").lower()
    if role in LEVELS:
        return role
    permission = str(answer.get("permission") or "none").lower()
    return permission if permission in LEVELS else "none"


def at_least(actual: str, required: str) -> bool:
    """Whether level `actual` includes `required`."""
    return LEVELS.index(actual) >= LEVELS.index(required)
