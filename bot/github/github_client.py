"""The GitHub client (App tokens, or one plain token): rate limits and pacing on HttpTransport."""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import jwt
import redis
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bot import logs, telemetry
from bot.errors import (
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubRetriesExhausted,
    GitHubValidationFailed,
    SettingsError,
)
from bot.http_transport import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_TRIES,
    MAX_WAIT,
    TIMEOUT,
    Call,
    Failure,
    FailureKind,
    HttpTransport,
    RetryLimits,
    RetryPolicy,
    Wait,
    parse_retry_after,
)
from bot.settings import DEFAULT_GITHUB_API_URL
from bot.state import app_identity, installation_tokens, pacing

logger = logging.getLogger("bot.github.github_client")

JSONDict = dict[str, Any]

USER_AGENT = "mlgate/0.1.0"
# https://docs.github.com/en/rest/about-the-rest-api/api-versions
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
# Contents of files of 1-100 MB come back with `encoding: none` unless asked for raw.
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

# "Generating a JSON Web Token (JWT) for a GitHub App": set iat 60 s in the past against
# clock drift; exp may be at most 10 minutes in the future.
JWT_BACKDATE = 60
JWT_LIFETIME = 9 * 60
# Installation tokens live one hour; refresh 5 minutes early so that a token never expires
# in the middle of a job.
TOKEN_REFRESH_MARGIN = 5 * 60
# Long enough for one token request with its retries; a crashed holder frees it by expiry.
TOKEN_LOCK_MS = 15_000
TOKEN_LOCK_POLL = 0.05

# "Otherwise, wait for at least one minute before retrying" (docs.github.com, "Rate limits
# for the REST API", secondary rate limits without retry-after / x-ratelimit-* headers).
SECONDARY_RATE_LIMIT_WAIT = 60.0
# GitHub's largest page size for the endpoints mlgate lists.
PER_PAGE = 100
MAX_ITEMS = 10_000
# "List commits on a pull request" lists at most 250 commits.
PULL_COMMITS_LIMIT = 250
# What a checkout token may do: read the contents of the one repository it was made for.
CHECKOUT_PERMISSIONS = {"contents": "read"}


def _repo_path(repo: str) -> str:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', not {repo!r}")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _seg(value: object) -> str:
    return quote(str(value), safe="")


class Pacer(Protocol):
    """Where pacing tokens and rate-limit pauses are kept, per scope (installation or "app")."""

    def reserve(self, scope: int | str) -> float:
        """Take one pacing token; the seconds to wait before using it."""
        ...

    def pause(self, scope: int | str, seconds: float) -> None:
        """Hold every request of `scope` for `seconds` (never shortening a longer pause)."""
        ...

    def paused_for(self, scope: int | str) -> float:
        """Seconds left of the pause of `scope` (0.0 when not paused)."""
        ...


@dataclass(frozen=True)
class SharedPacer:
    """Pacing and pauses in Redis, shared by every process of an installation (the App)."""

    redis: redis.Redis
    bucket: pacing.TokenBucket

    def reserve(self, scope: int | str) -> float:
        return self.bucket.reserve(scope)

    def pause(self, scope: int | str, seconds: float) -> None:
        pacing.pause(self.redis, scope, seconds)

    def paused_for(self, scope: int | str) -> float:
        return pacing.pause_remaining(self.redis, scope)


class ProcessPacer:
    """The same rules held in this process, for a client with one token and no Redis (a CI
    step): a burst of `capacity` mutating requests, then `rate` per second, and pauses."""

    def __init__(
        self,
        capacity: int = pacing.DEFAULT_CAPACITY,
        rate: float = pacing.DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError(f"capacity must be >= 1 and rate > 0, not {capacity} and {rate}")
        self.capacity, self.interval, self._clock = capacity, 1.0 / rate, clock
        self._lock = threading.Lock()
        self._arrival: dict[int | str, float] = {}  # the GCRA's theoretical arrival time
        self._until: dict[int | str, float] = {}

    def reserve(self, scope: int | str) -> float:
        # The GCRA of bot/state/pacing.py: every call takes a token, even one that must wait.
        with self._lock:
            now = self._clock()
            arrival = max(self._arrival.get(scope, now), now) + self.interval
            self._arrival[scope] = arrival
            return max(arrival - now - self.capacity * self.interval, 0.0)

    def pause(self, scope: int | str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            self._until[scope] = max(self._until.get(scope, until), until)

    def paused_for(self, scope: int | str) -> float:
        with self._lock:
            return max(self._until.get(scope, 0.0) - self._clock(), 0.0)


class GitHubClient:
    """A client of the GitHub REST API for one installation (or the App, or one plain token),
    on HttpTransport."""

    def __init__(
        self,
        api_url: str,
        redis: redis.Redis | None,
        *,
        auth: Callable[[], str],
        installation_id: int | None = None,
        reauthenticate: Callable[[], None] | None = None,
        identity: Callable[[], str] | None = None,
        session: requests.Session | None = None,
        bucket: pacing.TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_tries: int = MAX_TRIES,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        max_wait: float = MAX_WAIT,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        """`auth` returns the Authorization header value; `reauthenticate` drops a stale one;
        `identity` returns the login this client writes as (the App's bot user).

        Without `redis`, pacing and rate-limit pauses are kept in this process (ProcessPacer).
        """
        self.api_url = api_url.rstrip("/")
        self.installation_id = installation_id
        self._identity = identity
        limits = RetryLimits(max_tries, backoff_base, backoff_cap, max_wait, timeout)
        self._transport = HttpTransport(
            "github", logger, session=session, sleep=sleep, limits=limits
        )
        pacer: Pacer = (
            ProcessPacer()
            if redis is None
            else SharedPacer(redis, bucket if bucket is not None else pacing.TokenBucket(redis))
        )
        self._rules = _GitHubRules(
            pacer=pacer,
            # Pauses and pacing are per installation; App-level (JWT) calls share one scope.
            scope=installation_id if installation_id is not None else "app",
            installation_id=installation_id,
            auth=auth,
            reauthenticate=reauthenticate,
            max_wait=max_wait,
        )

    def bot_login(self) -> str | None:
        """The login of the user this client writes as (`<app slug>[bot]`), if known."""
        return self._identity() if self._identity is not None else None

    @classmethod
    def with_token(
        cls, api_url: str, token: str, *, session: requests.Session | None = None
    ) -> GitHubClient:
        """A client for one plain token (a CI job's GITHUB_TOKEN, a personal access token):
        no App and no Redis. The token is redacted from every log line and error."""
        logs.register_secret(token)
        return cls(
            api_url or DEFAULT_GITHUB_API_URL, None, auth=lambda: f"Bearer {token}", session=session
        )

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one API request with retries, rate-limit waits and pacing; raise GitHubError."""
        return self._request(method, path, json=json, params=params, headers=headers)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        paced: bool = True,
    ) -> requests.Response:
        method = method.upper()
        if path.startswith(("http://", "https://")):
            # Absolute URLs come from Link headers; never send the token to another host.
            if not path.startswith(self.api_url + "/"):
                raise ValueError(f"{path} is not under the GitHub API at {self.api_url}")
            url = path
        else:
            url = self.api_url + path
        call = Call(
            method,
            url,
            self._log_path(url),
            idempotent=method not in MUTATING_METHODS,
            json=json,
            params=params,
            headers={
                "Accept": MEDIA_TYPE,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
                **(headers or {}),
            },
        )
        return self._transport.send(
            call, self._rules if paced else replace(self._rules, paced=False)
        )

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` and return its decoded JSON body."""
        return self.request("GET", path, params=params).json()

    def paginate(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        item_key: str | None = None,
        max_items: int = MAX_ITEMS,
    ) -> Iterator[JSONDict]:
        """Yield the items of every page, following `Link: rel="next"`, at most `max_items`.

        `item_key` names the list inside wrapped answers, e.g. "check_runs".
        """
        query: dict[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        url: str | None = path
        count = 0
        while url is not None:
            response = self.request("GET", url, params=query)
            body = response.json()
            items = body[item_key] if item_key is not None else body
            if not isinstance(items, list):
                raise GitHubError(
                    "GET",
                    self._log_path(url),
                    response.status_code,
                    f"expected a list{f' under {item_key!r}' if item_key else ''}, "
                    f"got {type(items).__name__}",
                )
            for item in items:
                if count >= max_items:
                    logger.warning(
                        "github pagination stopped at max_items",
                        extra={"path": self._log_path(url), "max_items": max_items},
                    )
                    return
                count += 1
                yield item
            next_link = response.links.get("next")
            url = next_link["url"] if next_link else None
            # The next link already carries every query parameter.
            query = None

    # -- checks ------------------------------------------------------------------------------

    def create_check_run(self, repo: str, name: str, head_sha: str, **fields: Any) -> JSONDict:
        """POST a check run; `fields` are GitHub's (status, conclusion, output, actions...)."""
        body = {"name": name, "head_sha": head_sha, **fields}
        result: JSONDict = self.request("POST", f"{_repo_path(repo)}/check-runs", json=body).json()
        return result

    def update_check_run(self, repo: str, check_run_id: int, **fields: Any) -> JSONDict:
        """PATCH a check run with GitHub's fields."""
        result: JSONDict = self.request(
            "PATCH", f"{_repo_path(repo)}/check-runs/{check_run_id}", json=fields
        ).json()
        return result

    def list_check_runs(
        self, repo: str, ref: str, *, check_name: str | None = None
    ) -> Iterator[JSONDict]:
        """Check runs of a sha, branch or tag, optionally only those named `check_name`."""
        params = {"check_name": check_name} if check_name else None
        return self.paginate(
            f"{_repo_path(repo)}/commits/{_seg(ref)}/check-runs", params, item_key="check_runs"
        )

    # -- issue comments and reactions --------------------------------------------------------

    def create_comment(self, repo: str, issue_number: int, body: str) -> JSONDict:
        """Comment on an issue or pull request."""
        result: JSONDict = self.request(
            "POST", f"{_repo_path(repo)}/issues/{issue_number}/comments", json={"body": body}
        ).json()
        return result

    def update_comment(self, repo: str, comment_id: int, body: str) -> JSONDict:
        """Replace the body of an issue comment."""
        result: JSONDict = self.request(
            "PATCH", f"{_repo_path(repo)}/issues/comments/{comment_id}", json={"body": body}
        ).json()
        return result

    def list_comments(self, repo: str, issue_number: int) -> Iterator[JSONDict]:
        """Comments of an issue or pull request, oldest first."""
        return self.paginate(f"{_repo_path(repo)}/issues/{issue_number}/comments")

    # -- issues ---------------------------------------------------------------------------------

    def create_issue(
        self, repo: str, title: str, body: str, labels: Sequence[str] = ()
    ) -> JSONDict:
        """Open an issue (labels that do not exist yet are created by GitHub)."""
        fields: dict[str, Any] = {"title": title, "body": body}
        if labels:
            fields["labels"] = list(labels)
        result: JSONDict = self.request("POST", f"{_repo_path(repo)}/issues", json=fields).json()
        return result

    def update_issue(self, repo: str, number: int, **fields: Any) -> JSONDict:
        """Edit an issue: `body`, `title`, `state` ("closed", "open"), ..."""
        result: JSONDict = self.request(
            "PATCH", f"{_repo_path(repo)}/issues/{number}", json=fields
        ).json()
        return result

    def list_issues(
        self, repo: str, *, labels: str = "", state: str = "open"
    ) -> Iterator[JSONDict]:
        """Issues (pull requests included, as GitHub lists them) with all of `labels`."""
        params = {"state": state} | ({"labels": labels} if labels else {})
        return self.paginate(f"{_repo_path(repo)}/issues", params)

    def add_reaction(self, repo: str, comment_id: int, content: str) -> JSONDict:
        """React to an issue comment (`eyes`, `rocket`, `confused`, ...)."""
        result: JSONDict = self.request(
            "POST",
            f"{_repo_path(repo)}/issues/comments/{comment_id}/reactions",
            json={"content": content},
        ).json()
        return result

    # -- repository and pull requests --------------------------------------------------------

    def collaborator_permission(self, repo: str, username: str) -> JSONDict:
        """`{"permission", "role_name", "user"}` of `username` on `repo`."""
        result: JSONDict = self.get_json(
            f"{_repo_path(repo)}/collaborators/{_seg(username)}/permission"
        )
        return result

    def get_pull(self, repo: str, number: int) -> JSONDict:
        """One pull request."""
        result: JSONDict = self.get_json(f"{_repo_path(repo)}/pulls/{number}")
        return result

    def list_pull_commits(self, repo: str, number: int) -> Iterator[JSONDict]:
        """Commits of a pull request, oldest first (GitHub lists at most 250)."""
        return self.paginate(
            f"{_repo_path(repo)}/pulls/{number}/commits", max_items=PULL_COMMITS_LIMIT
        )

    def list_pull_files(self, repo: str, number: int) -> Iterator[JSONDict]:
        """Files changed by a pull request (GitHub lists at most 3000)."""
        return self.paginate(f"{_repo_path(repo)}/pulls/{number}/files")

    def get_contents(self, repo: str, path: str, ref: str | None = None) -> bytes | None:
        """The bytes of the file at `path` (at `ref`, default branch if None); None if absent."""
        url = f"{_repo_path(repo)}/contents/{quote(path.lstrip('/'), safe='/')}"
        params = {"ref": ref} if ref else None
        try:
            body = self.get_json(url, params)
        except GitHubNotFound:
            return None
        if not isinstance(body, dict) or body.get("type") != "file":
            kind = "directory" if isinstance(body, list) else body.get("type")
            raise GitHubError("GET", url, 200, f"{path} is a {kind}, not a file")
        if body.get("encoding") == "base64":
            return base64.b64decode(body.get("content") or "")
        # Files of 1-100 MB come with empty content and encoding "none" (GitHub docs,
        # "Get repository content"): ask for the raw media type instead.
        return self.request("GET", url, params=params, headers={"Accept": RAW_MEDIA_TYPE}).content

    def compare(self, repo: str, base: str, head: str) -> JSONDict:
        """Compare two commits (`base...head`): ahead/behind, commits and files."""
        result: JSONDict = self.get_json(f"{_repo_path(repo)}/compare/{_seg(base)}...{_seg(head)}")
        return result

    def create_pull(self, repo: str, *, title: str, head: str, base: str, body: str) -> JSONDict:
        """Open a pull request from branch `head` into `base`."""
        fields = {"title": title, "head": head, "base": base, "body": body}
        result: JSONDict = self.request("POST", f"{_repo_path(repo)}/pulls", json=fields).json()
        return result

    def list_pulls(
        self, repo: str, *, state: str = "open", base: str | None = None
    ) -> Iterator[JSONDict]:
        """Pull requests of `repo` (`open`, `closed` or `all`), optionally only into `base`."""
        params = {"state": state} | ({"base": base} if base else {})
        return self.paginate(f"{_repo_path(repo)}/pulls", params)

    def add_labels(self, repo: str, issue_number: int, labels: list[str]) -> list[JSONDict]:
        """Add labels to an issue or pull request; GitHub creates the ones the repo lacks."""
        result: list[JSONDict] = self.request(
            "POST", f"{_repo_path(repo)}/issues/{issue_number}/labels", json={"labels": labels}
        ).json()
        return result

    # -- Git Data API (needs Contents: write) ------------------------------------------------

    def create_blob(self, repo: str, content: bytes) -> str:
        """Store `content` as a blob; returns its sha."""
        body = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
        result = self.request("POST", f"{_repo_path(repo)}/git/blobs", json=body).json()
        return str(result["sha"])

    def create_tree(self, repo: str, entries: list[JSONDict], base_tree: str | None) -> str:
        """A tree of `entries` (GitHub's path/mode/type with sha or content; a null sha
        deletes) laid over `base_tree`; returns its sha."""
        body: JSONDict = {"tree": entries}
        if base_tree is not None:
            body["base_tree"] = base_tree
        result = self.request("POST", f"{_repo_path(repo)}/git/trees", json=body).json()
        return str(result["sha"])

    def create_git_commit(self, repo: str, message: str, tree: str, parents: list[str]) -> str:
        """A commit of `tree` on `parents`, authored by the App; returns its sha."""
        body = {"message": message, "tree": tree, "parents": parents}
        result = self.request("POST", f"{_repo_path(repo)}/git/commits", json=body).json()
        return str(result["sha"])

    def create_ref(self, repo: str, ref: str, sha: str) -> JSONDict:
        """Create `ref` (`refs/heads/...`) at `sha`; GitHubValidationFailed if it exists."""
        result: JSONDict = self.request(
            "POST", f"{_repo_path(repo)}/git/refs", json={"ref": ref, "sha": sha}
        ).json()
        return result

    def branch_head(self, repo: str, branch: str) -> str | None:
        """The commit sha `branch` points at (GET git/ref/heads/…); None when it does not
        exist."""
        name = quote(f"heads/{branch}", safe="/")
        try:
            answer = self.get_json(f"{_repo_path(repo)}/git/ref/{name}")
        except GitHubNotFound:
            return None
        return str(answer["object"]["sha"])

    def update_ref(self, repo: str, ref: str, sha: str, *, force: bool = False) -> JSONDict:
        """Point `ref` (`refs/heads/...`) at `sha`; `force` allows a move that is not a fast
        forward."""
        name = quote(ref.removeprefix("refs/"), safe="/")
        result: JSONDict = self.request(
            "PATCH", f"{_repo_path(repo)}/git/refs/{name}", json={"sha": sha, "force": force}
        ).json()
        return result

    # -- statuses and deployments ------------------------------------------------------------

    def create_commit_status(
        self,
        repo: str,
        sha: str,
        state: str,
        *,
        context: str,
        description: str | None = None,
        target_url: str | None = None,
    ) -> JSONDict:
        """Set a commit status (`error`, `failure`, `pending` or `success`)."""
        body: JSONDict = {"state": state, "context": context}
        if description is not None:
            body["description"] = description
        if target_url is not None:
            body["target_url"] = target_url
        result: JSONDict = self.request(
            "POST", f"{_repo_path(repo)}/statuses/{_seg(sha)}", json=body
        ).json()
        return result

    def create_deployment(self, repo: str, ref: str, **fields: Any) -> JSONDict:
        """Create a deployment of `ref`; `fields` are GitHub's (environment, payload, ...)."""
        result: JSONDict = self.request(
            "POST", f"{_repo_path(repo)}/deployments", json={"ref": ref, **fields}
        ).json()
        return result

    def create_deployment_status(
        self, repo: str, deployment_id: int, state: str, **fields: Any
    ) -> JSONDict:
        """Add a status (`in_progress`, `success`, `failure`, ...) to a deployment."""
        result: JSONDict = self.request(
            "POST",
            f"{_repo_path(repo)}/deployments/{deployment_id}/statuses",
            json={"state": state, **fields},
        ).json()
        return result

    # -- App webhook deliveries (App-level client) ------------------------------------------

    def list_hook_deliveries(
        self, *, status: str | None = None, max_items: int = MAX_ITEMS
    ) -> Iterator[JSONDict]:
        """The App's webhook deliveries, newest first, optionally only `success` or `failure`
        ones (needs the App-level client)."""
        params = {"status": status} if status else None
        return self.paginate("/app/hook/deliveries", params, max_items=max_items)

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to send a webhook delivery again (needs the App-level client)."""
        self.request("POST", f"/app/hook/deliveries/{delivery_id}/attempts")

    # -- helpers -----------------------------------------------------------------------------

    def _log_path(self, url: str) -> str:
        path = urlsplit(url).path
        base = urlsplit(self.api_url).path
        return path[len(base) :] if base and path.startswith(base) else path


def _describe(response: requests.Response) -> str:
    """GitHub's `message` and `errors`, or the start of a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return logs.redact(text[:200]) or response.reason or "no body"
    if not isinstance(body, dict):
        return logs.redact(jsonlib.dumps(body)[:200])
    message = str(body.get("message") or response.reason or "no message")
    errors = body.get("errors")
    if errors:
        items = errors if isinstance(errors, list) else [errors]
        details = "; ".join(
            e if isinstance(e, str) else jsonlib.dumps(e, sort_keys=True) for e in items
        )
        message = f"{message} ({details})"
    return logs.redact(message)


def _error_for(method: str, path: str, response: requests.Response) -> GitHubError:
    message = _describe(response)
    status = response.status_code
    if status == 404:
        return GitHubNotFound(method, path, status, message)
    if status == 422:
        return GitHubValidationFailed(method, path, status, message)
    return GitHubError(method, path, status, message)


@dataclass(frozen=True)
class _GitHubRules(RetryPolicy):
    """GitHub's rules on the transport: pacing, installation-wide rate-limit pauses, 401s."""

    pacer: Pacer
    scope: int | str
    installation_id: int | None
    auth: Callable[[], str]
    reauthenticate: Callable[[], None] | None
    max_wait: float
    paced: bool = True

    def before_attempt(self, call: Call, wait: Wait) -> None:
        if self.paced and call.method in MUTATING_METHODS:
            # Pacing waits are not bounded by max_wait: queueing is their purpose.
            wait(self.pacer.reserve(self.scope), "pacing")
        pause = self.pacer.paused_for(self.scope)
        if pause > self.max_wait:
            raise GitHubRateLimited(
                call.method,
                call.path,
                0,
                f"installation {self.scope} is paused for {pause:.0f} s by GitHub's rate "
                f"limit, more than the {self.max_wait:.0f} s this client may block",
                retry_after=pause,
            )
        wait(pause, "rate-limit pause")

    def auth_headers(self) -> dict[str, str]:
        # Asked for every try: a re-authentication replaces the installation token.
        return {"Authorization": self.auth()}

    def may_resend(self, call: Call, exc: requests.RequestException) -> bool:
        # A read timeout after a POST may have created the comment already: only idempotent
        # requests are resent after one. Every ConnectionError is resent, as this client
        # always has, though requests also reports a connection dropped after sending as one.
        return isinstance(exc, requests.ConnectionError) or (
            isinstance(exc, requests.Timeout) and call.idempotent
        )

    def retry_after(self, response: requests.Response) -> float | None:
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            return parse_retry_after(retry_after, fallback=SECONDARY_RATE_LIMIT_WAIT)
        if response.headers.get("x-ratelimit-remaining") == "0":
            return _until_reset(response)
        # A 403 without these headers is a permission problem, unless GitHub says it is a
        # secondary rate limit; a 429 is always a rate limit.
        if response.status_code == 429 or "rate limit" in _describe(response).lower():
            return SECONDARY_RATE_LIMIT_WAIT
        return None

    def on_retry_after(self, call: Call, seconds: float) -> float:
        # Per GitHub, retry-after applies to the whole installation: every process sees the
        # pause before its next request to this installation, this one in before_attempt.
        self.pacer.pause(self.scope, seconds)
        return 0.0

    def answered(self, call: Call, response: requests.Response) -> None:
        if response.headers.get("x-ratelimit-remaining") == "0":
            # The next request would fail: hold the installation until the reset.
            self.pacer.pause(self.scope, _until_reset(response))

    def tried(self, call: Call, response: requests.Response | None) -> None:
        figures = telemetry.metrics()
        status = str(response.status_code) if response is not None else "none"
        figures.github_requests.labels(method=call.method, status=status).inc()
        remaining = response.headers.get("x-ratelimit-remaining") if response is not None else None
        if remaining is not None and remaining.isdigit():
            installation = str(self.installation_id) if self.installation_id is not None else "app"
            figures.github_rate_limit_remaining.labels(installation=installation).set(
                int(remaining)
            )

    def retry_server_error(self, call: Call, response: requests.Response) -> bool:
        # Writes too: a 5xx is retried with bounded backoff whatever the method, as this
        # client always has.
        return True

    def recover(self, call: Call, response: requests.Response) -> bool:
        if response.status_code != 401 or self.reauthenticate is None:
            return False
        # A cached installation token can be revoked before its expires_at (uninstall /
        # reinstall, suspended installation): fetch a fresh one once.
        self.reauthenticate()
        return True

    def log_fields(self, response: requests.Response | None) -> dict[str, object]:
        remaining = None
        if response is not None:
            remaining = response.headers.get("x-ratelimit-remaining")
        return {
            "ratelimit_remaining": int(remaining) if remaining and remaining.isdigit() else None,
            "installation_id": self.installation_id,
        }

    def error(self, failure: Failure) -> Exception:
        call, response = failure.call, failure.response
        if failure.kind is FailureKind.REFUSED and response is not None:
            return _error_for(call.method, call.path, response)
        detail = _describe(response) if response is not None else failure.reason
        if failure.kind is FailureKind.NOT_RESENT:
            return GitHubError(
                call.method,
                call.path,
                failure.status,
                f"{detail} (not retried: {call.method} is not idempotent)",
            )
        if failure.kind is FailureKind.WAIT_TOO_LONG:
            wait = failure.retry_after or 0.0
            return GitHubRateLimited(
                call.method,
                call.path,
                failure.status,
                f"{detail} (GitHub asks to wait {wait:.0f} s, more than the "
                f"{self.max_wait:.0f} s this client may block; retry later)",
                retry_after=wait,
            )
        return GitHubRetriesExhausted(
            call.method,
            call.path,
            failure.status,
            f"{detail} (gave up after {failure.attempts} tries)",
        )


def _until_reset(response: requests.Response) -> float:
    reset = response.headers.get("x-ratelimit-reset")
    try:
        return max(float(reset) - time.time(), 0.0) if reset else SECONDARY_RATE_LIMIT_WAIT
    except ValueError:
        return SECONDARY_RATE_LIMIT_WAIT


class GitHubApp:
    """The App's identity: JWTs, installation tokens cached in Redis, and clients."""

    def __init__(
        self,
        app_id: str,
        private_key_pem: str,
        api_url: str,
        redis: redis.Redis,
        *,
        session: requests.Session | None = None,
        bucket: pacing.TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_tries: int = MAX_TRIES,
        backoff_base: float = BACKOFF_BASE,
        max_wait: float = MAX_WAIT,
    ) -> None:
        if not app_id:
            raise SettingsError("GITHUB_APP_ID is not set: set it to the App id or client id")
        try:
            # Our own App's key, not untrusted input: checking its RSA maths took 30 ms of
            # CPU in every job (bench/evaluation_flow); a broken key still fails to parse here
            # or is refused by GitHub at the first JWT.
            loaded = serialization.load_pem_private_key(
                private_key_pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                "GITHUB_PRIVATE_KEY is not a PEM private key: download one from the App's "
                "settings page and pass its text, or its file via GITHUB_PRIVATE_KEY_PATH"
            ) from exc
        if not isinstance(loaded, RSAPrivateKey):
            raise SettingsError("GITHUB_PRIVATE_KEY must be an RSA key (GitHub signs with RS256)")
        self.app_id = app_id
        self.api_url = (api_url or DEFAULT_GITHUB_API_URL).rstrip("/")
        self._key = loaded
        self._redis = redis
        self._session = session if session is not None else requests.Session()
        self._bucket = bucket if bucket is not None else pacing.TokenBucket(redis)
        self._sleep = sleep
        self._client_options: dict[str, Any] = {
            "session": self._session,
            "bucket": self._bucket,
            "sleep": sleep,
            "max_tries": max_tries,
            "backoff_base": backoff_base,
            "max_wait": max_wait,
        }

    def jwt(self) -> str:
        """A fresh RS256 JWT that authenticates as the App for about nine minutes."""
        now = int(time.time())
        payload = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": self.app_id}
        return jwt.encode(payload, self._key, algorithm="RS256")

    def app_client(self) -> GitHubClient:
        """A client authenticated with the App's JWT, for `/app/*` endpoints."""
        return GitHubClient(
            self.api_url,
            self._redis,
            auth=lambda: f"Bearer {self.jwt()}",
            **self._client_options,
        )

    def client(self, installation_id: int) -> GitHubClient:
        """A client authenticated as one installation, with its token from the shared cache."""
        return GitHubClient(
            self.api_url,
            self._redis,
            auth=lambda: f"Bearer {self.installation_token(installation_id)}",
            installation_id=installation_id,
            reauthenticate=lambda: self.forget_token(installation_id),
            identity=self.bot_login,
            **self._client_options,
        )

    def slug(self) -> str:
        """The App's slug (`GET /app`), cached in Redis for a day."""
        slug = app_identity.cached_slug(self._redis, self.app_id)
        if slug is None:
            slug = str(self.app_client().get_json("/app")["slug"])
            app_identity.remember_slug(self._redis, self.app_id, slug)
        return slug

    def bot_login(self) -> str:
        """The login of the App's bot user, which writes its comments: `<slug>[bot]`."""
        return f"{self.slug()}[bot]"

    def installation_for_repo(self, full_name: str) -> int:
        """The id of the installation that covers `owner/name`; GitHubNotFound if none."""
        body = self.app_client().get_json(f"{_repo_path(full_name)}/installation")
        return int(body["id"])

    def installation_token(self, installation_id: int) -> str:
        """The installation's access token, shared through Redis by every process.

        Only one process asks GitHub at a time (a short SET NX lock); the others wait for
        the token it stores.
        """
        while True:
            token = installation_tokens.cached(self._redis, installation_id)
            if token is None:
                with installation_tokens.refresh_lock(
                    self._redis, installation_id, TOKEN_LOCK_MS
                ) as held:
                    if held:
                        # The previous holder may have stored a token between our read and
                        # our lock.
                        token = installation_tokens.cached(
                            self._redis, installation_id
                        ) or self._fetch_token(installation_id)
            if token is not None:
                logs.register_secret(token)
                return token
            self._sleep(TOKEN_LOCK_POLL)

    def forget_token(self, installation_id: int) -> None:
        """Drop the cached token, e.g. after GitHub refused it with 401."""
        installation_tokens.forget(self._redis, installation_id)

    def checkout_token(self, installation_id: int, repo: str) -> str:
        """A new installation token that can only read the contents of `repo` (owner/name).

        It fetches a checkout: should anything of the run ever see it, it can write nothing
        and read no other repository. It is not cached: each run gets its own, which expires
        within the hour.
        """
        name = repo.partition("/")[2]
        if not name:
            raise ValueError(f"repository must be 'owner/name', not {repo!r}")
        response = self.app_client()._request(
            "POST",
            f"/app/installations/{installation_id}/access_tokens",
            json={"repositories": [name], "permissions": dict(CHECKOUT_PERMISSIONS)},
            paced=False,
        )
        token = str(response.json()["token"])
        logs.register_secret(token)
        return token

    def _fetch_token(self, installation_id: int) -> str:
        response = self.app_client()._request(
            "POST",
            f"/app/installations/{installation_id}/access_tokens",
            # Token requests create no content; pacing them would delay every installation.
            paced=False,
        )
        body = response.json()
        token = str(body["token"])
        logs.register_secret(token)
        expires_at = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
        ttl_ms = int((expires_at.timestamp() - time.time() - TOKEN_REFRESH_MARGIN) * 1000)
        installation_tokens.store(
            self._redis, installation_id, token, str(body["expires_at"]), ttl_ms
        )
        return token
