"""What an evaluation is about: a PR's facts, and a retrain someone asked of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def github_time(value: object) -> float | None:
    """A GitHub timestamp (`2024-05-01T12:00:00Z`) as seconds since the epoch; None if it is
    missing or not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


@dataclass(frozen=True)
class PullRequest:
    """The facts about a PR that an evaluation needs, from the API or a webhook payload."""

    repo: str
    number: int
    head_sha: str
    base_sha: str
    base_ref: str
    default_branch: str
    head_repo: str | None
    author: str
    draft: bool
    clone_url: str

    @classmethod
    def from_api(cls, pull: Mapping[str, Any], repository: Mapping[str, Any]) -> PullRequest:
        head_repo = (pull["head"].get("repo") or {}).get("full_name")
        return cls(
            repo=str(repository["full_name"]),
            number=int(pull["number"]),
            head_sha=str(pull["head"]["sha"]),
            base_sha=str(pull["base"]["sha"]),
            base_ref=str(pull["base"]["ref"]),
            default_branch=str(repository.get("default_branch") or "main"),
            head_repo=str(head_repo) if head_repo else None,
            author=str(pull["user"]["login"]),
            draft=bool(pull.get("draft")),
            clone_url=str(repository.get("clone_url") or ""),
        )

    @property
    def from_fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.repo.lower()

    @property
    def short_sha(self) -> str:
        return self.head_sha[:7]

    @property
    def config_ref(self) -> str:
        """Where mlgate reads its configuration: the default branch. The base sha is that
        branch's head when the PR targets it: immutable, so its files cache for good."""
        return self.base_sha if self.base_ref == self.default_branch else self.default_branch


@dataclass(frozen=True)
class Retrain:
    """A /retrain to run before the evaluation: its validated parameters and who asked."""

    parameters: Mapping[str, str]
    user: str

    def describe(self) -> str:
        given = " ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"after /retrain by @{self.user}" + (f" with {given}" if given else "")
