"""MLGATE_REPO_ALLOWLIST: which installed repositories mlgate acts on."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase


def repo_allowed(repo: str, patterns: Sequence[str]) -> bool:
    """Globs in order, `!` negates, the last match wins; no patterns allows every repository.

    `org/*,!org/secret` allows every repository of org except org/secret (.gitignore's rule).
    """
    if not patterns:
        return True
    allowed = all(p.startswith("!") for p in patterns)
    name = repo.lower()
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatchcase(name, pattern.lstrip("!").lower()):
            allowed = not negated
    return allowed
