"""Which changed paths make a PR worth evaluating: triggers are git-style globs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.core.config import CONFIG_PATH, Triggers

# GitHub lists at most 3,000 files of a pull request ("List pull requests files").
PR_FILES_CAP = 3000


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """A glob as .gitignore reads it: `**/` any directories (or none), `*` within one name."""
    out, i = [], 0
    pattern = pattern.rstrip("/")  # `models/`: everything below the directory
    # A slash at the start or in the middle anchors the pattern at the root (`/params.yaml`).
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    # A pattern without a slash (`params.yaml`, `*.dvc`) matches at any depth, as in git.
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + "".join(out) + "(?:/.*)?")


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(_compile(p).fullmatch(path) for p in patterns)


@dataclass(frozen=True)
class Classification:
    """A PR's changed paths, sorted into what mlgate cares about."""

    data: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    config: bool = False
    other: tuple[str, ...] = ()
    truncated: bool = False

    @property
    def relevant(self) -> bool:
        return bool(self.data or self.code or self.metrics)


def classify(
    paths: Sequence[str], triggers: Triggers, metrics_files: Iterable[str] = ()
) -> Classification:
    """Sort changed paths into data, code, metrics and other; a path counts once, data first."""
    data, code, metrics, other = [], [], [], []
    metric_set = set(metrics_files)
    for path in paths:
        if matches(path, triggers.data):
            data.append(path)
        elif matches(path, triggers.code):
            code.append(path)
        elif path in metric_set:
            metrics.append(path)
        elif path != CONFIG_PATH:
            other.append(path)
    return Classification(
        data=tuple(data),
        code=tuple(code),
        metrics=tuple(metrics),
        config=CONFIG_PATH in paths,
        other=tuple(other),
        truncated=len(paths) >= PR_FILES_CAP,
    )
