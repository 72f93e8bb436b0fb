"""GitHubState: the emulated GitHub's objects, their JSON, and the helpers tests drive it with."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from bot.emulator import app_auth, hookshot
from bot.emulator.app_registry import AppRegistry
from bot.emulator.git_repo import CommitInfo, FileChange, GitRepository
from bot.emulator.github_models import (
    JSON,
    PERMISSION_LEVELS,
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    EmulatedApp,
    EmulatedRepo,
    EmulatorError,
    Installation,
    Issue,
    Label,
    PullRequest,
    RateInfo,
    Reaction,
    Status,
    Token,
    User,
    iso,
    utc,
)
from bot.emulator.openapi import load_spec
from bot.loopback import LoopbackServer

logger = logging.getLogger("bot.emulator")

HTML_BASE = "https://github.com"
# Permissions of a new installation: what mlgate's App manifest asks for.
DEFAULT_INSTALLATION_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "deployments": "write",
    "issues": "write",
    "members": "read",  # organization permission: team memberships of deploy approvers
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
# The labels a new repository has (name, color, description), as GitHub creates them.
DEFAULT_LABELS = (
    ("bug", "d73a4a", "Something isn't working"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("duplicate", "cfd3d7", "This issue or pull request already exists"),
    ("enhancement", "a2eeef", "New feature or request"),
    ("good first issue", "7057ff", "Good for newcomers"),
    ("help wanted", "008672", "Extra attention is needed"),
    ("invalid", "e4e669", "This doesn't seem right"),
    ("question", "d876e3", "Further information is requested"),
    ("wontfix", "ffffff", "This will not be worked on"),
)
# A label GitHub creates on the fly, when an issue is given a name no label has yet.
NEW_LABEL_COLOR = "ededed"
APP_EVENTS = ["check_run", "check_suite", "issue_comment", "pull_request", "push"]
# "Rate limits for the REST API": 5,000 requests per hour for an installation (at least).
RATE_LIMIT = 5000
RATE_WINDOW = 3600


class PullExists(EmulatorError):
    """An open PR from this head into this base exists already; the message is the head."""


class _RateWindow:
    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.used = 0
        self.reset = int(now) + RATE_WINDOW


class GitHubState(LoopbackServer):
    """Everything the emulated GitHub holds, on a loopback server without an app yet:
    GitHubEmulator gives it the routes that answer from this state."""

    def __init__(
        self,
        app_id: str = "1",
        openapi_path: Path | None = None,
        root: Path | None = None,
        app_slug: str = "mlgate",
    ) -> None:
        # `app_slug` names the App whose installation tokens act here: "github-actions" makes
        # them a workflow job's GITHUB_TOKEN, which comments as github-actions[bot].
        super().__init__(name="github-emulator")
        self.app_id = str(app_id)
        self.app_slug = app_slug
        self.bot_login = f"{self.app_slug}[bot]"
        self.app_private_key_pem, self._public_key = app_auth.generate_private_key()
        self.spec = load_spec(openapi_path) if openapi_path is not None else None
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="mlgate-emulator-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_lifetime: float = 3600
        self.rate_limit = RATE_LIMIT
        self.installation_permissions = dict(DEFAULT_INSTALLATION_PERMISSIONS)
        # What codes and their lifetimes are measured with; a test may set another clock.
        self.clock: Callable[[], float] = time.time
        self.apps = AppRegistry(
            EmulatedApp(
                id=self.app_id,
                slug=self.app_slug,
                name=self.app_slug,
                owner="octocat",
                client_id=f"Iv1.{self.app_id}",
                client_secret=secrets.token_hex(20),
                webhook_secret=None,
                private_key_pem=self.app_private_key_pem,
                public_key=self._public_key,
                permissions=self.installation_permissions,
                events=list(APP_EVENTS),
                created_at="2024-01-01T00:00:00Z",
                description="CI/CD for machine-learning repositories",
                external_url=f"{HTML_BASE}/apps/{self.app_slug}",
            )
        )
        # The person "signed in" on the emulated github.com, whom the web flows act for.
        self.signed_in: str | None = None

        self._lock = threading.RLock()
        self._ids = itertools.count(1)

        self._users: dict[str, User] = {}
        self._installations: dict[int, Installation] = {}
        self._tokens: dict[str, Token] = {}
        self._repos: dict[str, EmulatedRepo] = {}
        self._permissions: dict[tuple[str, str], str] = {}
        # (org, team slug) -> {login: membership state}
        self._team_members: dict[tuple[str, str], dict[str, str]] = {}
        self._pulls: dict[tuple[str, int], PullRequest] = {}
        self._issues: dict[tuple[str, int], Issue] = {}
        # repository -> lower-cased name -> label
        self._labels: dict[str, dict[str, Label]] = {}
        self._next_number: dict[str, int] = {}
        self._comments: dict[int, Comment] = {}
        self._reactions: dict[int, list[Reaction]] = {}
        self._check_runs: dict[int, CheckRun] = {}
        self._suites: dict[tuple[str, str], int] = {}
        self._statuses: dict[int, Status] = {}
        self._deployments: dict[int, Deployment] = {}
        self._deployment_statuses: dict[int, list[DeploymentStatus]] = {}
        self._rates: dict[str, _RateWindow] = {}
        self._hook: tuple[str, str] | None = None
        self._deliveries: list[hookshot.Delivery] = []
        self._delivery_ids = itertools.count(90_000_000_001)
        self.add_user(self.bot_login, "Bot")

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving, wait for requests in flight, and remove a temporary root."""
        super().stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """The API root, what GITHUB_API_URL points at."""
        return self.base_url

    @property
    def public_key(self) -> Any:
        """The App's public key, which verifies App JWTs."""
        return self._public_key

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # -- users, installations, permissions ----------------------------------------------------

    def add_user(
        self, login: str, type: str = "User", *, email: str | None = None, name: str | None = None
    ) -> JSON:
        """Register a user (or Bot / Organization); the same login always has the same id.
        `email`, a verified address, links commits that carry it to the account."""
        with self._lock:
            user = self._users.get(login)
            if user is None:
                user = User(login=login, id=1000 + len(self._users), type=type)
                self._users[login] = user
            elif type != "User":
                user.type = type
            if email is not None:
                user.email = email
            if name is not None:
                user.name = name
            return self.user_json(login)

    def sign_in(self, login: str) -> None:
        """Be `login` in the emulated browser: the OAuth and manifest pages act for them."""
        self._ensure_user(login)
        with self._lock:
            self.signed_in = login

    def sign_out(self) -> None:
        """Nobody is signed in: the web flows send the browser to the login page."""
        with self._lock:
            self.signed_in = None

    @property
    def github_app(self) -> EmulatedApp:
        """The emulator's own App (the one `app_id` names): set its `callback_urls` for the
        OAuth web flow; its `client_id` and `client_secret` are the dashboard's."""
        return self.apps.own

    def registered_app(self, identifier: str) -> EmulatedApp:
        """An App by id, client id or slug (those made from manifests included)."""
        app = self.apps.find(str(identifier))
        if app is None:
            raise EmulatorError(f"no App {identifier!r} on the emulator")
        return app

    def _ensure_user(self, login: str) -> User:
        with self._lock:
            if login not in self._users:
                self.add_user(login)
            return self._users[login]

    def add_installation(
        self,
        installation_id: int,
        account: str,
        permissions: Mapping[str, str] | None = None,
        app_id: str | None = None,
    ) -> None:
        """Install an App (the emulator's own unless `app_id` names another) on `account`;
        permissions default to what the App asks for (mlgate's manifest for its own)."""
        app = self.registered_app(app_id) if app_id is not None else self.apps.own
        own = app is self.apps.own
        default = self.installation_permissions if own else app.permissions
        with self._lock:
            self._ensure_user(account)
            self._installations[installation_id] = Installation(
                id=installation_id,
                account=account,
                permissions=dict(permissions or default),
                created_at=iso(),
                app_id="" if own else app.id,
            )

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        """Give `login` a role on the repository (admin, maintain, write, triage, read, none)."""
        if permission not in PERMISSION_LEVELS:
            raise ValueError(f"permission must be one of {PERMISSION_LEVELS}, not {permission!r}")
        with self._lock:
            self.repo(full_name)
            self._ensure_user(login)
            self._permissions[(full_name, login)] = permission

    def add_team_member(self, org: str, team_slug: str, login: str, state: str = "active") -> None:
        """Make `login` a member of the organization's team (`state` active or pending)."""
        if state not in ("active", "pending"):
            raise ValueError(f"state must be active or pending, not {state!r}")
        with self._lock:
            self._ensure_user(login)
            self._team_members.setdefault((org.lower(), team_slug.lower()), {})[login] = state

    def team_membership(self, org: str, team_slug: str, login: str) -> str | None:
        """The membership state of `login` in the team, None if not a member."""
        with self._lock:
            return self._team_members.get((org.lower(), team_slug.lower()), {}).get(login)

    def permission(self, full_name: str, login: str) -> str:
        """The role of `login` on the repository; the owning user is admin."""
        with self._lock:
            explicit = self._permissions.get((full_name, login))
            if explicit is not None:
                return explicit
            owner = full_name.partition("/")[0]
            user = self._users.get(owner)
            if login == owner and user is not None and user.type == "User":
                return "admin"
            return "none"

    def installation_app(self, installation: Installation) -> str:
        """The id of the App `installation` belongs to."""
        return installation.app_id or self.app_id

    def user_repositories(self, login: str, installation: Installation) -> list[EmulatedRepo]:
        """The installation's repositories `login` has a role on: what a user access token of
        its App reaches there ("explicit permission (:read, :write, or :admin)")."""
        with self._lock:
            repos = [r for r in self._repos.values() if r.installation_id == installation.id]
        return [r for r in repos if self.permission(r.full_name, login) != "none"]

    def user_installations(self, login: str, app_id: str) -> list[Installation]:
        """Installations of App `app_id` that `login` can reach: on their own account, or
        holding a repository they have a role on."""
        with self._lock:
            installations = [
                i for i in self._installations.values() if self.installation_app(i) == app_id
            ]
        return [
            i
            for i in sorted(installations, key=lambda i: i.id)
            if i.account == login or self.user_repositories(login, i)
        ]

    # -- repositories -------------------------------------------------------------------------

    def _author_email(self, login: str) -> str:
        # GitHub's noreply address, which ties a commit to an account.
        user = self._ensure_user(login)
        return f"{user.id}+{login}@users.noreply.github.com"

    def _new_repo(
        self,
        full_name: str,
        *,
        installation_id: int | None,
        default_branch: str,
        private: bool,
        fork_of: str | None,
    ) -> EmulatedRepo:
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repository must be 'owner/name', not {full_name!r}")
        with self._lock:
            if full_name in self._repos:
                raise EmulatorError(f"repository {full_name} already exists")
            self._ensure_user(owner)
            if installation_id is not None and installation_id not in self._installations:
                self.add_installation(installation_id, owner)
            repo = EmulatedRepo(
                full_name=full_name,
                repo_id=100_000 + len(self._repos) + 1,
                path=self.root / owner / name,
                default_branch=default_branch,
                private=private,
                installation_id=installation_id,
                fork_of=fork_of,
                created_at=iso(),
                author_email=self._author_email,
                on_branch_moved=self._branch_moved,
            )
            self._repos[full_name] = repo
            self._next_number[full_name] = 1
        return repo

    def create_repo(
        self,
        full_name: str,
        installation_id: int | None = None,
        files: Mapping[str, str | bytes | None] | None = None,
        default_branch: str = "main",
        private: bool = False,
    ) -> EmulatedRepo:
        """A repository with one commit of `files` on `default_branch`, in a real git repo."""
        repo = self._new_repo(
            full_name,
            installation_id=installation_id,
            default_branch=default_branch,
            private=private,
            fork_of=None,
        )
        GitRepository.init(repo.path, default_branch)
        initial = dict(files) if files else {"README.md": f"# {repo.name}\n"}
        repo.commit(default_branch, initial, "Initial commit", author=repo.owner)
        return repo

    def fork_repo(self, full_name: str, owner: str) -> EmulatedRepo:
        """Fork a repository to `owner` (with all its branches); not part of any installation."""
        source = self.repo(full_name)
        fork = self._new_repo(
            f"{owner}/{source.name}",
            installation_id=None,
            default_branch=source.default_branch,
            private=source.private,
            fork_of=full_name,
        )
        GitRepository.init(fork.path, source.default_branch)
        fork.git.fetch(source.path, "+refs/heads/*:refs/heads/*")
        fork.git.git("reset", "-q", "--hard", "HEAD")
        return fork

    def repo(self, full_name: str) -> EmulatedRepo:
        """The emulated repository `owner/name`."""
        with self._lock:
            try:
                return self._repos[full_name]
            except KeyError:
                raise EmulatorError(f"no repository {full_name} on the emulator") from None

    def _branch_moved(self, repo: EmulatedRepo, branch: str, sha: str) -> None:
        with self._lock:
            pulls = [
                pr
                for pr in self._pulls.values()
                if pr.state == "open" and pr.head_repo == repo.full_name and pr.head_ref == branch
            ]
        for pr in pulls:
            self._sync_pull_head(pr, sha)

    def _sync_pull_head(self, pr: PullRequest, sha: str) -> None:
        # GitHub keeps every PR head, forks included, under refs/pull/N/head of the base repo.
        base = self.repo(pr.repo)
        if pr.head_repo == pr.repo:
            base.git.update_ref(f"refs/pull/{pr.number}/head", sha)
        else:
            head = self.repo(pr.head_repo)
            base.git.fetch(head.path, f"+refs/heads/{pr.head_ref}:refs/pull/{pr.number}/head")
        with self._lock:
            pr.head_sha = sha
            pr.updated_at = iso()

    # -- pull requests and comments -----------------------------------------------------------

    def open_pull_request(
        self,
        full_name: str,
        head: str,
        base: str,
        user: str,
        title: str | None = None,
        draft: bool = False,
        head_repo: str | None = None,
        body: str | None = None,
    ) -> JSON:
        """Open a PR from `head` (in `head_repo`, a fork, if given) into `base`; its head sha
        follows later commits to the head branch."""
        repo = self.repo(full_name)
        if ":" in head and head_repo is None:
            fork_owner, _, head = head.partition(":")
            head_repo = f"{fork_owner}/{repo.name}"
        head_name = head_repo or full_name
        with self._lock:
            exists = head_name in self._repos
        source = (
            self.repo(head_name) if exists else self.fork_repo(full_name, head_name.split("/")[0])
        )
        head_sha = source.git.branch_sha(head)
        if head_sha is None:
            raise EmulatorError(f"{head_name} has no branch {head!r}")
        if repo.git.branch_sha(base) is None:
            raise EmulatorError(f"{full_name} has no branch {base!r}")
        pr = self._store_pull(
            full_name,
            head_name,
            head,
            head_sha,
            base,
            user,
            title or f"Merge {head} into {base}",
            body,
            draft,
            refuse_duplicate=False,
        )
        return self.pull_request(full_name, pr.number)

    def _store_pull(
        self,
        full_name: str,
        head_repo: str,
        head: str,
        head_sha: str,
        base: str,
        user: str,
        title: str,
        body: str | None,
        draft: bool,
        *,
        refuse_duplicate: bool,
    ) -> PullRequest:
        self._ensure_user(user)
        with self._lock:
            if refuse_duplicate and any(
                pr.state == "open"
                and pr.repo == full_name
                and pr.head_repo == head_repo
                and pr.head_ref == head
                and pr.base_ref == base
                for pr in self._pulls.values()
            ):
                raise PullExists(f"{head_repo.partition('/')[0]}:{head}")
            number = self._next_number[full_name]
            self._next_number[full_name] = number + 1
            now = iso()
            pr = PullRequest(
                number=number,
                id=self._next_id(),
                repo=full_name,
                head_repo=head_repo,
                head_ref=head,
                base_ref=base,
                user=user,
                title=title,
                body=body,
                draft=draft,
                head_sha=head_sha,
                created_at=now,
                updated_at=now,
            )
            self._pulls[(full_name, number)] = pr
        self._sync_pull_head(pr, head_sha)
        return pr

    def _pull(self, full_name: str, number: int) -> PullRequest:
        with self._lock:
            pr = self._pulls.get((full_name, number))
        if pr is None:
            raise EmulatorError(f"{full_name} has no pull request #{number}")
        return pr

    def close_pull_request(
        self, full_name: str, number: int, merged: bool = False, by: str | None = None
    ) -> str | None:
        """Close a PR (as `by`, the repository's owner if not given); `merged` really merges
        its head into the base branch (a merge commit) and returns the merge commit's sha."""
        pr = self._pull(full_name, number)
        repo = self.repo(full_name)
        merge_sha = None
        if merged:
            message = (
                f"Merge pull request #{number} from {pr.head_repo.split('/')[0]}/{pr.head_ref}"
            )
            merge_sha = repo.git.merge(
                pr.base_ref,
                pr.head_sha,
                f"{message}\n\n{pr.title}",
                author_name=repo.owner,
                author_email=self._author_email(repo.owner),
            )
        with self._lock:
            now = iso()
            pr.state = "closed"
            pr.closed_at = pr.updated_at = now
            pr.closed_by = by or repo.owner
            if merged:
                pr.merged = True
                pr.merged_at = now
                pr.merged_by = repo.owner
                pr.merge_commit_sha = merge_sha
        if merge_sha is not None:
            self._branch_moved(repo, pr.base_ref, merge_sha)
        return merge_sha

    def reopen_pull_request(self, full_name: str, number: int) -> None:
        """Reopen a closed, unmerged PR; its head follows its branch again."""
        pr = self._pull(full_name, number)
        if pr.merged:
            raise EmulatorError(f"{full_name}#{number} is merged: it cannot be reopened")
        head = self.repo(pr.head_repo).git.branch_sha(pr.head_ref)
        if head is None:
            raise EmulatorError(f"{pr.head_repo} has no branch {pr.head_ref!r} any more")
        with self._lock:
            pr.state = "open"
            pr.closed_at = pr.closed_by = None
            pr.updated_at = iso()
        self._sync_pull_head(pr, head)

    # -- issues and labels --------------------------------------------------------------------

    def create_issue(
        self,
        full_name: str,
        title: str,
        user: str,
        body: str | None = None,
        labels: list[str] | tuple[str, ...] = (),
    ) -> JSON:
        """An issue opened by a person (as if typed on GitHub); labels are created if new."""
        self.repo(full_name)
        issue = self._store_issue(full_name, title, body, user, list(labels), [], via_app=False)
        return self.issue(full_name, issue.number)

    def _store_issue(
        self,
        full_name: str,
        title: str,
        body: str | None,
        user: str,
        labels: list[str],
        assignees: list[str],
        *,
        via_app: bool,
    ) -> Issue:
        self._ensure_user(user)
        names = self._label_names(full_name, labels)
        with self._lock:
            number = self._next_number[full_name]
            self._next_number[full_name] = number + 1
            now = iso()
            issue = Issue(
                number=number,
                id=self._next_id(),
                repo=full_name,
                title=title,
                body=body,
                user=user,
                created_at=now,
                updated_at=now,
                via_app=via_app,
                labels=names,
                assignees=list(assignees),
            )
            self._issues[(full_name, number)] = issue
            return issue

    def _issue_like(self, full_name: str, number: int) -> Issue | PullRequest | None:
        # PRs are issues: one numbering, one issues API.
        with self._lock:
            return self._issues.get((full_name, number)) or self._pulls.get((full_name, number))

    def issue(self, full_name: str, number: int) -> JSON:
        """Issue (or PR) `number` as `GET /repos/{owner}/{repo}/issues/{number}` shows it."""
        item = self._issue_like(full_name, number)
        if item is None:
            raise EmulatorError(f"{full_name} has no issue #{number}")
        return self.issue_json(item)

    def issues(self, full_name: str) -> list[JSON]:
        """Every issue and PR of the repository, open or closed, oldest first."""
        with self._lock:
            items: list[Issue | PullRequest] = [
                *(i for (name, _), i in self._issues.items() if name == full_name),
                *(p for (name, _), p in self._pulls.items() if name == full_name),
            ]
        return [self.issue_json(i) for i in sorted(items, key=lambda i: i.number)]

    def _repo_labels(self, full_name: str) -> dict[str, Label]:
        # Created on first use: a repository starts with GitHub's default labels.
        with self._lock:
            labels = self._labels.get(full_name)
            if labels is None:
                labels = self._labels[full_name] = {
                    name: Label(self._next_id(), name, color, description, True)
                    for name, color, description in DEFAULT_LABELS
                }
            return labels

    def create_label(
        self,
        full_name: str,
        name: str,
        color: str = NEW_LABEL_COLOR,
        description: str | None = None,
    ) -> JSON:
        """A label of the repository (the existing one if the name is taken, in any case)."""
        self.repo(full_name)
        with self._lock:
            labels = self._repo_labels(full_name)
            label = labels.get(name.lower())
            if label is None:
                label = labels[name.lower()] = Label(
                    self._next_id(), name, color, description, False
                )
            return self.label_json(full_name, label)

    def labels(self, full_name: str) -> list[JSON]:
        """The repository's labels."""
        with self._lock:
            return [self.label_json(full_name, x) for x in self._repo_labels(full_name).values()]

    def _label_names(self, full_name: str, names: list[str]) -> list[str]:
        """The labels' names as the repository spells them, creating those it lacks, as
        GitHub does for labels given to an issue; each name once."""
        found: list[str] = []
        with self._lock:
            for name in names:
                self.create_label(full_name, name)
                canonical = self._repo_labels(full_name)[name.lower()].name
                if canonical not in found:
                    found.append(canonical)
        return found

    def add_comment(self, full_name: str, number: int, body: str, user: str) -> JSON:
        """A comment by a person (as if typed on GitHub) on issue or PR `number`."""
        if self._issue_like(full_name, number) is None:
            raise EmulatorError(f"{full_name} has no issue or pull request #{number}")
        self._ensure_user(user)
        return self.comment_json(self._store_comment(full_name, number, body, user, via_app=False))

    def _store_comment(
        self, full_name: str, number: int, body: str, user: str, *, via_app: bool
    ) -> Comment:
        with self._lock:
            now = iso()
            comment = Comment(self._next_id(), full_name, number, body, user, now, now, via_app)
            self._comments[comment.id] = comment
            return comment

    # -- inspection ---------------------------------------------------------------------------

    def pull_request(self, full_name: str, number: int) -> JSON:
        """The PR as `GET /repos/{owner}/{repo}/pulls/{number}` shows it."""
        return self.pull_json(self._pull(full_name, number))

    def repository(self, full_name: str) -> JSON:
        """The repository object, as webhook payloads and the API carry it."""
        return self.repo_json(self.repo(full_name))

    def comments(self, full_name: str, number: int) -> list[JSON]:
        """Comments on issue or PR `number`, oldest first."""
        with self._lock:
            found = [
                c
                for c in self._comments.values()
                if c.repo == full_name and c.issue_number == number
            ]
            return [self.comment_json(c) for c in found]

    def check_runs(self, full_name: str, sha: str | None = None) -> list[JSON]:
        """Check runs of the repository (of one head sha if given), oldest first, with the
        `actions` and all `annotations` sent, which the API does not echo."""
        with self._lock:
            runs = [
                r
                for r in self._check_runs.values()
                if r.repo == full_name and (sha is None or r.head_sha == sha)
            ]
            return [
                {
                    **self.check_run_json(r),
                    "actions": [dict(a) for a in r.actions],
                    "annotations": [dict(a) for a in r.annotations],
                }
                for r in runs
            ]

    def reactions(self, comment_id: int) -> list[JSON]:
        """Reactions to an issue comment, oldest first."""
        with self._lock:
            return [self.reaction_json(r) for r in self._reactions.get(comment_id, [])]

    def deployments(self, full_name: str) -> list[JSON]:
        """Deployments of the repository, oldest first."""
        with self._lock:
            return [
                self.deployment_json(d) for d in self._deployments.values() if d.repo == full_name
            ]

    def deployment_statuses(self, deployment_id: int) -> list[JSON]:
        """Statuses of a deployment, oldest first."""
        with self._lock:
            return [
                self.deployment_status_json(s)
                for s in self._deployment_statuses.get(deployment_id, [])
            ]

    def statuses(self, full_name: str, sha: str) -> list[JSON]:
        """Commit statuses set on `sha`, oldest first."""
        with self._lock:
            return [
                self.status_json(s)
                for s in self._statuses.values()
                if s.repo == full_name and s.sha == sha
            ]

    # -- rate limits --------------------------------------------------------------------------

    def _consume_rate(self, key: str, limit: int) -> RateInfo:
        now = time.time()
        with self._lock:
            window = self._rates.get(key)
            if window is None or now >= window.reset:
                window = self._rates[key] = _RateWindow(limit, now)
            window.limit = limit
            exceeded = window.used >= limit
            if not exceeded:
                window.used += 1
            return RateInfo(limit, window.used, window.reset, exceeded)

    # -- webhooks -----------------------------------------------------------------------------

    def configure_webhook(self, url: str, secret: str) -> None:
        """Where the App's webhooks go, and the secret that signs them."""
        with self._lock:
            self._hook = (url, secret)

    def send_webhook(self, event: str, payload: dict[str, Any], *, guid: str | None = None) -> int:
        """Deliver one webhook like GitHub does; returns the HTTP status (0: no connection)."""
        body = json.dumps(payload).encode()
        return self._deliver(event, payload, body, guid or str(uuid.uuid4()), redelivery=False)

    def _deliver(
        self, event: str, payload: dict[str, Any], body: bytes, guid: str, *, redelivery: bool
    ) -> int:
        with self._lock:
            if self._hook is None:
                raise EmulatorError("no webhook configured: call configure_webhook(url, secret)")
            url, secret = self._hook
        headers = hookshot.delivery_headers(
            event=event, guid=guid, app_id=self.app_id, secret=secret, body=body
        )
        started = time.monotonic()
        error = None
        try:
            response = requests.post(
                url, data=body, headers=headers, timeout=hookshot.DELIVERY_TIMEOUT
            )
            status_code = response.status_code
            response.close()
        except requests.Timeout:
            status_code, error = 0, "timed out"
        except requests.RequestException:
            status_code, error = 0, "failed to connect to host"
        duration = round(time.monotonic() - started, 3)
        with self._lock:
            self._deliveries.append(
                hookshot.Delivery(
                    id=next(self._delivery_ids),
                    guid=guid,
                    delivered_at=iso(),
                    redelivery=redelivery,
                    duration=duration,
                    status_code=status_code,
                    status=hookshot.delivery_status(status_code, error),
                    event=event,
                    payload=payload,
                    body=body,
                )
            )
        return status_code

    def redeliver(self, delivery_id: int) -> int:
        """Send a recorded delivery again, same guid, marked as a redelivery."""
        with self._lock:
            original = next((d for d in self._deliveries if d.id == delivery_id), None)
        if original is None:
            raise EmulatorError(f"no delivery {delivery_id}")
        return self._deliver(
            original.event, original.payload, original.body, original.guid, redelivery=True
        )

    @property
    def deliveries(self) -> list[JSON]:
        """The delivery log, newest first, as `GET /app/hook/deliveries` shows it."""
        with self._lock:
            return [d.as_json() for d in reversed(self._deliveries)]

    def _delivery_list(self) -> list[hookshot.Delivery]:
        with self._lock:
            return list(reversed(self._deliveries))

    # -- JSON shapes (GitHub's REST objects) ----------------------------------------------------

    def _api(self, path: str) -> str:
        return f"{self._base_url}{path}"

    @staticmethod
    def _node_id(kind: str, ident: int) -> str:
        return base64.b64encode(f"{kind}:{ident}".encode()).decode().rstrip("=")

    def user_json(self, login: str) -> JSON:
        """A simple-user object."""
        user = self._ensure_user(login)
        api = self._api(f"/users/{login}")
        return {
            "login": login,
            "id": user.id,
            "node_id": self._node_id(user.type, user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{HTML_BASE}/{login}"
            if user.type != "Bot"
            else f"{HTML_BASE}/apps/{self.app_slug}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def app_json(self) -> JSON:
        """The App (an integration object) as check runs and `performed_via_github_app` show it."""
        owner = (
            next(iter(self._installations.values())).account if self._installations else "octocat"
        )
        return {
            "id": int(self.app_id) if self.app_id.isdigit() else 1,
            "slug": self.app_slug,
            "node_id": self._node_id("Integration", 1),
            "client_id": f"Iv1.{self.app_id}",
            "owner": self.user_json(owner),
            "name": self.app_slug,
            "description": "CI/CD for machine-learning repositories",
            "external_url": f"{HTML_BASE}/apps/{self.app_slug}",
            "html_url": f"{HTML_BASE}/apps/{self.app_slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": dict(self.installation_permissions),
            "events": ["check_run", "check_suite", "issue_comment", "pull_request", "push"],
        }

    def _installed_app(self, installation: Installation) -> JSON:
        if not installation.app_id:
            return {
                "app_id": int(self.app_id) if self.app_id.isdigit() else 1,
                "client_id": f"Iv1.{self.app_id}",
                "app_slug": self.app_slug,
                "events": list(APP_EVENTS),
            }
        app = self.registered_app(installation.app_id)
        return {
            "app_id": int(app.id),
            "client_id": app.client_id,
            "app_slug": app.slug,
            "events": list(app.events),
        }

    def installation_json(self, installation: Installation) -> JSON:
        """An installation object."""
        account = self._ensure_user(installation.account)
        return {
            "id": installation.id,
            "account": self.user_json(installation.account),
            "repository_selection": "selected",
            "access_tokens_url": self._api(f"/app/installations/{installation.id}/access_tokens"),
            "repositories_url": self._api("/installation/repositories"),
            "html_url": f"{HTML_BASE}/settings/installations/{installation.id}",
            **self._installed_app(installation),
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(installation.permissions),
            "created_at": installation.created_at,
            "updated_at": installation.created_at,
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def repo_json(self, repo: EmulatedRepo) -> JSON:
        """A full repository object; `clone_url` is the local git repository (file:// URL)."""
        api = self._api(f"/repos/{repo.full_name}")
        html = f"{HTML_BASE}/{repo.full_name}"
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        result: JSON = {
            "id": repo.id,
            "node_id": self._node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user_json(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": html,
            "description": None,
            "fork": repo.fork_of is not None,
            "url": api,
            **{key: api + suffix for key, suffix in templated.items()},
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": repo.path.as_uri(),
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 1,
            "default_branch": repo.default_branch,
            "open_issues": 0,
            "open_issues_count": 0,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "allow_forking": True,
            "pushed_at": repo.created_at,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
        }
        return result

    def comment_json(self, comment: Comment) -> JSON:
        """An issue-comment object (PR comments are issue comments)."""
        api = self._api(f"/repos/{comment.repo}/issues/comments/{comment.id}")
        counts = {
            c: 0 for c in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
        }
        with self._lock:
            for reaction in self._reactions.get(comment.id, []):
                counts[reaction.content] += 1
        return {
            "id": comment.id,
            "node_id": self._node_id("IssueComment", comment.id),
            "url": api,
            "html_url": f"{HTML_BASE}/{comment.repo}/pull/{comment.issue_number}"
            f"#issuecomment-{comment.id}",
            "issue_url": self._api(f"/repos/{comment.repo}/issues/{comment.issue_number}"),
            "body": comment.body,
            "user": self.user_json(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": self._association(comment.repo, comment.user),
            "performed_via_github_app": self.app_json() if comment.via_app else None,
            "reactions": {"url": f"{api}/reactions", "total_count": sum(counts.values()), **counts},
        }

    def _association(self, full_name: str, login: str) -> str:
        if login == full_name.partition("/")[0]:
            return "OWNER"
        return "COLLABORATOR" if self.permission(full_name, login) != "none" else "NONE"

    def reaction_json(self, reaction: Reaction) -> JSON:
        """A reaction object."""
        return {
            "id": reaction.id,
            "node_id": self._node_id("Reaction", reaction.id),
            "user": self.user_json(reaction.user),
            "content": reaction.content,
            "created_at": reaction.created_at,
        }

    def check_run_json(self, run: CheckRun) -> JSON:
        """A check-run object as the Checks API answers it."""
        api = self._api(f"/repos/{run.repo}/check-runs/{run.id}")
        with self._lock:
            pulls = [
                pr
                for pr in self._pulls.values()
                # GitHub lists only PRs whose head is in the same repository: never fork PRs.
                if pr.repo == run.repo
                and pr.head_repo == run.repo
                and pr.state == "open"
                and pr.head_sha == run.head_sha
            ]
        return {
            "id": run.id,
            "node_id": self._node_id("CheckRun", run.id),
            "head_sha": run.head_sha,
            "external_id": run.external_id,
            "url": api,
            "html_url": f"{HTML_BASE}/{run.repo}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": self.app_json(),
            "pull_requests": [self._pull_minimal(pr) for pr in pulls],
        }

    def _pull_minimal(self, pr: PullRequest) -> JSON:
        base_repo = self.repo(pr.repo)
        head_repo = self.repo(pr.head_repo)
        return {
            "id": pr.id,
            "number": pr.number,
            "url": self._api(f"/repos/{pr.repo}/pulls/{pr.number}"),
            "head": {
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "repo": {
                    "id": head_repo.id,
                    "url": self._api(f"/repos/{pr.head_repo}"),
                    "name": head_repo.name,
                },
            },
            "base": {
                "ref": pr.base_ref,
                "sha": base_repo.git.branch_sha(pr.base_ref) or "",
                "repo": {
                    "id": base_repo.id,
                    "url": self._api(f"/repos/{pr.repo}"),
                    "name": base_repo.name,
                },
            },
        }

    def pull_simple_json(self, pr: PullRequest) -> JSON:
        """A pull request as lists show it: no counts, no mergeability."""
        repo = self.repo(pr.repo)
        head_repo = self.repo(pr.head_repo)
        base_sha = repo.git.branch_sha(pr.base_ref) or pr.head_sha
        api = self._api(f"/repos/{pr.repo}/pulls/{pr.number}")
        issue = self._api(f"/repos/{pr.repo}/issues/{pr.number}")
        html = f"{HTML_BASE}/{pr.repo}/pull/{pr.number}"
        links = {
            "self": api,
            "html": html,
            "issue": issue,
            "comments": f"{issue}/comments",
            "review_comments": f"{api}/comments",
            "review_comment": self._api(f"/repos/{pr.repo}/pulls/comments{{/number}}"),
            "commits": f"{api}/commits",
            "statuses": self._api(f"/repos/{pr.repo}/statuses/{pr.head_sha}"),
        }
        return {
            "url": api,
            "id": pr.id,
            "node_id": self._node_id("PullRequest", pr.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self.user_json(pr.user),
            "body": pr.body,
            "labels": self._labels_json(pr.repo, pr.labels),
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "label": f"{head_repo.owner}:{pr.head_ref}",
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "user": self.user_json(head_repo.owner),
                "repo": self.repo_json(head_repo),
            },
            "base": {
                "label": f"{repo.owner}:{pr.base_ref}",
                "ref": pr.base_ref,
                "sha": base_sha,
                "user": self.user_json(repo.owner),
                "repo": self.repo_json(repo),
            },
            "_links": {name: {"href": href} for name, href in links.items()},
            "author_association": self._association(pr.repo, pr.user),
            "auto_merge": None,
            "draft": pr.draft,
        }

    def pull_json(self, pr: PullRequest) -> JSON:
        """A pull-request object, with counts and mergeability computed from git."""
        repo = self.repo(pr.repo)
        base_sha = repo.git.branch_sha(pr.base_ref) or pr.head_sha
        merge_base = repo.git.merge_base(base_sha, pr.head_sha) or base_sha
        changes = repo.git.diff(merge_base, pr.head_sha)
        commits = repo.git.count(merge_base, pr.head_sha)
        with self._lock:
            comment_count = sum(
                1
                for c in self._comments.values()
                if c.repo == pr.repo and c.issue_number == pr.number
            )
        is_open = pr.state == "open"
        # A conflict makes GitHub say mergeable false and "dirty" (no merge commit possible).
        clean = repo.git.mergeable(base_sha, pr.head_sha) if is_open else True
        if not is_open:
            state = "unknown"
        elif not clean:
            state = "dirty"
        else:
            state = "draft" if pr.draft else "clean"
        return {
            **self.pull_simple_json(pr),
            "merged": pr.merged,
            "mergeable": clean if is_open else None,
            "rebaseable": clean if is_open else None,
            "mergeable_state": state,
            "merged_by": self.user_json(pr.merged_by) if pr.merged_by else None,
            "comments": comment_count,
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": commits,
            "additions": sum(c.additions for c in changes),
            "deletions": sum(c.deletions for c in changes),
            "changed_files": len(changes),
        }

    def label_json(self, full_name: str, label: Label) -> JSON:
        """A label object."""
        return {
            "id": label.id,
            "node_id": self._node_id("Label", label.id),
            "url": self._api(f"/repos/{full_name}/labels/{quote(label.name)}"),
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": label.default,
        }

    def _labels_json(self, full_name: str, names: list[str]) -> list[JSON]:
        with self._lock:
            labels = self._repo_labels(full_name)
            return [self.label_json(full_name, labels[n.lower()]) for n in names]

    def issue_json(self, item: Issue | PullRequest) -> JSON:
        """An issue object; a PR is an issue with a `pull_request` key."""
        api = self._api(f"/repos/{item.repo}/issues/{item.number}")
        is_pull = isinstance(item, PullRequest)
        html = f"{HTML_BASE}/{item.repo}/{'pull' if is_pull else 'issues'}/{item.number}"
        with self._lock:
            comments = sum(
                1
                for c in self._comments.values()
                if c.repo == item.repo and c.issue_number == item.number
            )
        assignees = [] if isinstance(item, PullRequest) else item.assignees
        answer: JSON = {
            "id": item.id,
            "node_id": self._node_id("PullRequest" if is_pull else "Issue", item.id),
            "url": api,
            "repository_url": self._api(f"/repos/{item.repo}"),
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": html,
            "number": item.number,
            "state": item.state,
            "state_reason": None if isinstance(item, PullRequest) else item.state_reason,
            "title": item.title,
            "body": item.body,
            "user": self.user_json(item.user),
            "labels": self._labels_json(item.repo, item.labels),
            "assignee": self.user_json(assignees[0]) if assignees else None,
            "assignees": [self.user_json(a) for a in assignees],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": comments,
            "closed_at": item.closed_at,
            "created_at": item.created_at,
            "updated_at": item.updated_at,
            "closed_by": self.user_json(item.closed_by) if item.closed_by else None,
            "author_association": self._association(item.repo, item.user),
            "timeline_url": f"{api}/timeline",
            "performed_via_github_app": (
                self.app_json() if isinstance(item, Issue) and item.via_app else None
            ),
        }
        if isinstance(item, PullRequest):
            answer["draft"] = item.draft
            answer["pull_request"] = {
                "url": self._api(f"/repos/{item.repo}/pulls/{item.number}"),
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": item.merged_at,
            }
        return answer

    def private_user_json(self, login: str) -> JSON:
        """The signed-in user as `GET /user` shows them to themselves."""
        user = self._ensure_user(login)
        with self._lock:
            owned = [r for r in self._repos.values() if r.owner == login]
        return {
            **self.user_json(login),
            "name": user.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": user.email,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": sum(1 for r in owned if not r.private),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "private_gists": 0,
            "total_private_repos": sum(1 for r in owned if r.private),
            "owned_private_repos": sum(1 for r in owned if r.private),
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "plan": {
                "name": "free",
                "space": 976562499,
                "private_repos": 10000,
                "collaborators": 0,
            },
        }

    def integration_json(self, app: EmulatedApp, *, count: bool = True) -> JSON:
        """An App as `GET /app` shows it to itself (`count`: with its installation count)."""
        with self._lock:
            installations = sum(
                1 for i in self._installations.values() if self.installation_app(i) == app.id
            )
        if app is self.apps.own:
            answer = self.app_json()
        else:
            answer = {
                "id": int(app.id),
                "slug": app.slug,
                "node_id": self._node_id("Integration", int(app.id)),
                "client_id": app.client_id,
                "owner": self.user_json(app.owner),
                "name": app.name,
                "description": app.description,
                "external_url": app.external_url,
                "html_url": f"{HTML_BASE}/apps/{app.slug}",
                "created_at": app.created_at,
                "updated_at": app.created_at,
                "permissions": dict(app.permissions),
                "events": list(app.events),
            }
        return {**answer, "installations_count": installations} if count else answer

    def commit_json(self, repo: EmulatedRepo, commit: CommitInfo) -> JSON:
        """A commit object as compare lists it."""
        api = self._api(f"/repos/{repo.full_name}/commits/{commit.sha}")

        def account(email: str) -> JSON | None:
            # GitHub links a commit to the account whose verified address it carries: commits
            # made through the emulator carry its "id+login@users.noreply" address.
            local, _, domain = email.partition("@")
            with self._lock:
                if domain == "users.noreply.github.com" and "+" in local:
                    login: str | None = local.partition("+")[2]
                    known = login in self._users
                else:
                    login = next(
                        (
                            u.login
                            for u in self._users.values()
                            if u.email and u.email.lower() == email.lower()
                        ),
                        None,
                    )
                    known = login is not None
            return self.user_json(login) if known and login is not None else None

        return {
            "url": api,
            "sha": commit.sha,
            "node_id": self._node_id("Commit", int(commit.sha[:8], 16)),
            "html_url": f"{HTML_BASE}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/comments",
            "commit": {
                "url": self._api(f"/repos/{repo.full_name}/git/commits/{commit.sha}"),
                "author": {
                    "name": commit.author_name,
                    "email": commit.author_email,
                    "date": utc(commit.author_date),
                },
                "committer": {
                    "name": commit.committer_name,
                    "email": commit.committer_email,
                    "date": utc(commit.committer_date),
                },
                "message": commit.message,
                "comment_count": 0,
                "tree": {
                    "sha": commit.tree,
                    "url": self._api(f"/repos/{repo.full_name}/git/trees/{commit.tree}"),
                },
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "payload": None,
                    "signature": None,
                    "verified_at": None,
                },
            },
            "author": account(commit.author_email),
            "committer": account(commit.committer_email),
            "parents": [
                {
                    "sha": parent,
                    "url": self._api(f"/repos/{repo.full_name}/commits/{parent}"),
                    "html_url": f"{HTML_BASE}/{repo.full_name}/commit/{parent}",
                }
                for parent in commit.parents
            ],
        }

    def diff_entry_json(self, repo: EmulatedRepo, change: FileChange, commit: str) -> JSON:
        """A diff-entry object (a file of a PR or a comparison)."""
        removed = change.status == "removed"
        entry: JSON = {
            "sha": change.old_sha if removed else change.new_sha,
            "filename": change.filename,
            "status": change.status,
            "additions": change.additions,
            "deletions": change.deletions,
            "changes": change.additions + change.deletions,
            "blob_url": f"{HTML_BASE}/{repo.full_name}/blob/{commit}/{change.filename}",
            "raw_url": f"{HTML_BASE}/{repo.full_name}/raw/{commit}/{change.filename}",
            "contents_url": self._api(
                f"/repos/{repo.full_name}/contents/{change.filename}?ref={commit}"
            ),
        }
        if change.patch is not None:
            entry["patch"] = change.patch
        if change.previous_filename is not None:
            entry["previous_filename"] = change.previous_filename
        return entry

    def status_json(self, status: Status) -> JSON:
        """A commit status object."""
        creator = self.user_json(status.creator)
        return {
            "url": self._api(f"/repos/{status.repo}/statuses/{status.sha}"),
            "avatar_url": creator["avatar_url"],
            "id": status.id,
            "node_id": self._node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "creator": creator,
        }

    def deployment_json(self, deployment: Deployment) -> JSON:
        """A deployment object."""
        api = self._api(f"/repos/{deployment.repo}/deployments/{deployment.id}")
        return {
            "url": api,
            "id": deployment.id,
            "node_id": self._node_id("Deployment", deployment.id),
            "sha": deployment.sha,
            "ref": deployment.ref,
            "task": deployment.task,
            "payload": deployment.payload,
            "original_environment": deployment.original_environment,
            "environment": deployment.environment,
            "description": deployment.description,
            "creator": self.user_json(deployment.creator),
            "created_at": deployment.created_at,
            "updated_at": deployment.updated_at,
            "statuses_url": f"{api}/statuses",
            "repository_url": self._api(f"/repos/{deployment.repo}"),
            "transient_environment": deployment.transient_environment,
            "production_environment": deployment.production_environment,
            "performed_via_github_app": self.app_json(),
        }

    def deployment_status_json(self, status: DeploymentStatus) -> JSON:
        """A deployment-status object."""
        with self._lock:
            deployment = self._deployments[status.deployment_id]
        api = self._api(f"/repos/{deployment.repo}/deployments/{deployment.id}")
        return {
            "url": f"{api}/statuses/{status.id}",
            "id": status.id,
            "node_id": self._node_id("DeploymentStatus", status.id),
            "state": status.state,
            "creator": self.user_json(status.creator),
            "description": status.description,
            "environment": status.environment,
            "target_url": status.target_url,
            "log_url": status.log_url,
            "environment_url": status.environment_url,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "deployment_url": api,
            "repository_url": self._api(f"/repos/{deployment.repo}"),
            "performed_via_github_app": self.app_json(),
        }
