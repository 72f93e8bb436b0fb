"""The emulators' types: users, installations, repositories, what the API creates, EmulatorError."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.emulator.git_repo import GitRepository

JSON = dict[str, Any]

# "Rate limits for the REST API": unauthenticated requests get 60 an hour.
ANONYMOUS_RATE_LIMIT = 60

# Repository roles, lowest first; mlgate compares them by this order.
PERMISSION_LEVELS = ("none", "read", "triage", "write", "maintain", "admin")
# The collaborator permission API keeps the legacy base roles in `permission`.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


def iso(ts: float | None = None) -> str:
    """GitHub's timestamp format: ISO 8601 in UTC with a Z and whole seconds."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc(git_date: str) -> str:
    """git's ISO 8601 date (with the committer's offset) as GitHub shows it: UTC with a Z."""
    return datetime.fromisoformat(git_date).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EmulatorError(RuntimeError):
    """An emulator was used in a way it cannot honour (unknown repository, missing setup)."""


class RateInfo:
    """The `x-ratelimit-*` values of one answer."""

    def __init__(self, limit: int, used: int, reset: int, exceeded: bool) -> None:
        self.limit = limit
        self.used = used
        self.reset = reset
        self.exceeded = exceeded

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": "core",
        }


@dataclass
class User:
    login: str
    id: int
    type: str
    # A verified address: commits carrying it are linked to the account, as on GitHub.
    email: str | None = None
    name: str | None = None


@dataclass
class Installation:
    id: int
    account: str
    permissions: dict[str, str]
    created_at: str
    app_id: str = ""  # "" : the emulator's own App


@dataclass
class EmulatedApp:
    """A GitHub App registered on the emulator: its own, or one created from a manifest."""

    id: str
    slug: str
    name: str
    owner: str
    client_id: str
    client_secret: str
    webhook_secret: str | None
    private_key_pem: str
    public_key: Any
    permissions: dict[str, str]
    events: list[str]
    created_at: str
    hook_url: str | None = None
    hook_active: bool = True
    redirect_url: str | None = None
    # Where the OAuth web flow may send a user back: `redirect_uri` must be one of these.
    callback_urls: list[str] = field(default_factory=list)
    setup_url: str | None = None
    description: str | None = None
    external_url: str = ""
    public: bool = False


@dataclass
class UserToken:
    """A user access token of a GitHub App (`ghu_`), from the OAuth web flow."""

    token: str
    login: str
    app_id: str
    created_at: float


@dataclass
class Token:
    token: str
    installation_id: int
    expires_at: float
    permissions: dict[str, str]
    repository_ids: frozenset[int] | None  # None: every repository of the installation


@dataclass
class PullRequest:
    number: int
    id: int
    repo: str
    head_repo: str
    head_ref: str
    base_ref: str
    user: str
    title: str
    body: str | None
    draft: bool
    head_sha: str
    created_at: str
    updated_at: str
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: str | None = None
    labels: list[str] = field(default_factory=list)
    closed_by: str | None = None


@dataclass
class Issue:
    """An issue that is not a pull request (PRs are issues too, but live in PullRequest)."""

    number: int
    id: int
    repo: str
    title: str
    body: str | None
    user: str
    created_at: str
    updated_at: str
    via_app: bool
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    closed_by: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None
    default: bool


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: str
    created_at: str
    updated_at: str
    via_app: bool


@dataclass
class Reaction:
    id: int
    comment_id: int
    user: str
    content: str
    created_at: str


@dataclass
class CheckRun:
    id: int
    repo: str
    head_sha: str
    name: str
    suite_id: int
    status: str
    conclusion: str | None
    started_at: str | None
    completed_at: str | None
    details_url: str | None
    external_id: str | None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[JSON] = field(default_factory=list)
    actions: list[JSON] = field(default_factory=list)


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    state: str
    description: str | None
    target_url: str | None
    context: str
    created_at: str
    creator: str


@dataclass
class Deployment:
    id: int
    repo: str
    sha: str
    ref: str
    task: str
    payload: Any
    environment: str
    original_environment: str
    description: str | None
    transient_environment: bool
    production_environment: bool
    created_at: str
    updated_at: str
    creator: str


@dataclass
class DeploymentStatus:
    id: int
    deployment_id: int
    state: str
    description: str
    environment: str
    target_url: str
    log_url: str
    environment_url: str
    created_at: str
    creator: str


class EmulatedRepo:
    """A repository on the emulated GitHub, backed by a real git repository at `path`."""

    def __init__(
        self,
        *,
        full_name: str,
        repo_id: int,
        path: Path,
        default_branch: str,
        private: bool,
        installation_id: int | None,
        fork_of: str | None,
        created_at: str,
        author_email: Callable[[str], str],
        on_branch_moved: Callable[[EmulatedRepo, str, str], None],
    ) -> None:
        self.full_name = full_name
        self.owner, _, self.name = full_name.partition("/")
        self.id = repo_id
        self.path = path
        self.default_branch = default_branch
        self.private = private
        self.installation_id = installation_id
        self.fork_of = fork_of
        self.created_at = created_at
        self.git = GitRepository(path)
        self._author_email = author_email
        self._on_branch_moved = on_branch_moved

    def __repr__(self) -> str:
        return f"EmulatedRepo({self.full_name!r}, path={str(self.path)!r})"

    def commit(
        self,
        branch: str,
        files: Mapping[str, str | bytes | None],
        message: str = "Update files",
        author: str = "octocat",
    ) -> str:
        """Write `files` (None deletes) and commit them on `branch`, creating it from the
        default branch if missing; returns the new commit's sha."""
        sha = self.git.commit_files(
            branch,
            files,
            message,
            author_name=author,
            author_email=self._author_email(author),
            start_from=f"refs/heads/{self.default_branch}",
        )
        self._on_branch_moved(self, branch, sha)
        return sha

    def create_branch(self, name: str, from_ref: str) -> str:
        """Create branch `name` at `from_ref` (branch, tag or sha); returns its sha."""
        sha = self.git.resolve(from_ref)
        if sha is None:
            raise ValueError(f"{self.full_name} has no ref {from_ref!r}")
        self.git.create_branch(name, sha)
        self._on_branch_moved(self, name, sha)
        return sha

    def set_ref(self, ref: str, sha: str, expect: str | None) -> None:
        """Point `ref` (`refs/...`) at `sha` if it points at `expect` ("" : does not exist
        yet; None: anything), GitError otherwise; PRs whose head branch moved follow it."""
        self.git.compare_and_set(ref, sha, expect)
        if ref.startswith("refs/heads/"):
            self._on_branch_moved(self, ref.removeprefix("refs/heads/"), sha)

    def head(self, ref: str) -> str:
        """The commit sha of branch `ref` (or of any ref git can resolve)."""
        sha = self.git.branch_sha(ref) or self.git.resolve(ref)
        if sha is None:
            raise ValueError(f"{self.full_name} has no branch {ref!r}")
        return sha
