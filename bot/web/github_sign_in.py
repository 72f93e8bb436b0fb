"""The dashboard's GitHub calls: the App's OAuth web flow (authorize, exchange the code) and,
with the user's token, who they are and which repositories they share with the App."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import requests

from bot import logs
from bot.core.allowlist import repo_allowed
from bot.errors import GitHubError, SignInRefused
from bot.http_transport import Call, Failure, FailureKind, HttpTransport, RetryLimits, RetryPolicy
from bot.settings import Settings
from bot.state.dashboard_sessions import VisibleRepository

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
USER_AGENT = "mlgate-dashboard"
# A person waits for these calls: one quick retry, never a long backoff or rate-limit wait.
LIMITS = RetryLimits(max_tries=2, backoff_base=0.2, backoff_cap=0.5, max_wait=0.0, timeout=(3, 10))
PER_PAGE = 100
# Pages followed per listing: a user in more than 1,000 installations sees the first 1,000.
MAX_PAGES = 10
# The role GitHub's `permissions` hash stands for, strongest first.
ROLES = (("admin", "admin"), ("maintain", "maintain"), ("push", "write"), ("triage", "triage"))


class _Rules(RetryPolicy):
    """GitHub as a signed-in person sees it: their token on every try, errors as GitHubError."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def error(self, failure: Failure) -> Exception:
        response = failure.response
        message = failure.reason or "no answer"
        if response is not None:
            try:
                body = response.json()
            except ValueError:
                body = None
            found = body.get("message") if isinstance(body, dict) else None
            message = logs.redact(str(found or response.reason or "no message"))
        if failure.kind is not FailureKind.REFUSED:
            message = f"{message} ({failure.kind.value} after {failure.attempts} tries)"
        return GitHubError(failure.call.method, failure.call.path, failure.status, message)


class GitHubSignIn:
    """The App's OAuth client and the user's view of GitHub, for one web process."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self._transport = HttpTransport("github", log, session=session, limits=LIMITS)

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """GitHub's page that asks the person to authorize the App, then comes back with a code."""
        query = urlencode(
            {
                "client_id": self.settings.github_client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                # Not `allow_signup`: only people already on GitHub can share a repository.
                "allow_signup": "false",
            }
        )
        return f"{self.settings.github_web_url}/login/oauth/authorize?{query}"

    def exchange(self, code: str, redirect_uri: str) -> str:
        """The user access token for `code`; SignInRefused when GitHub refuses the code."""
        url = f"{self.settings.github_web_url}/login/oauth/access_token"
        # In the body, never the query: a URL with the client secret could end up in a log.
        call = Call(
            "POST",
            url,
            "/login/oauth/access_token",
            # A code is spent by its first exchange: a resent request could only fail.
            idempotent=False,
            json={
                "client_id": self.settings.github_client_id,
                "client_secret": self.settings.github_client_secret,
                "code": code,
                "redirect_uri": redirect_uri,
            },
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            body = self._transport.send(call, _Rules(None)).json()
        except (GitHubError, ValueError) as exc:
            raise SignInRefused(f"GitHub did not exchange the sign-in code: {exc}") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            # A refused exchange is still a 200, with the reason in `error`.
            error = (body.get("error_description") or body.get("error")) if body else None
            raise SignInRefused(f"GitHub refused the sign-in code: {error or 'no token'}")
        logs.register_secret(token)
        return token

    def login(self, token: str) -> str:
        """The login of the token's user."""
        body = self._get(token, "/user", None).json()
        return str(body["login"])

    def repositories(self, token: str) -> list[VisibleRepository]:
        """Every repository the user and the App share (`GET /user/installations`, then each
        installation's repositories the user can reach), allowed by MLGATE_REPO_ALLOWLIST."""
        found: dict[str, VisibleRepository] = {}
        for installation in self._pages(token, "/user/installations", "installations"):
            installation_id = int(installation["id"])
            path = f"/user/installations/{installation_id}/repositories"
            for repo in self._pages(token, path, "repositories"):
                name = str(repo["full_name"])
                if not repo_allowed(name, self.settings.repo_allowlist):
                    continue
                found[name] = VisibleRepository(
                    full_name=name,
                    installation_id=installation_id,
                    private=bool(repo.get("private")),
                    role=role(repo.get("permissions") or {}),
                )
        return sorted(found.values(), key=lambda r: r.full_name.lower())

    def _pages(self, token: str, path: str, item_key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = self._get(token, url, params)
            listed = response.json().get(item_key)
            if not isinstance(listed, list):
                raise GitHubError("GET", path, response.status_code, f"no {item_key} list")
            items += [item for item in listed if isinstance(item, dict)]
            following = response.links.get("next")
            url = following["url"] if following else None
            params = None  # the next link carries the query
        return items

    def _get(self, token: str, path: str, params: dict[str, Any] | None) -> requests.Response:
        api = self.settings.github_api_url
        if path.startswith(("http://", "https://")):
            # A Link header's URL: the user's token goes to the API's own host only.
            if not path.startswith(api + "/"):
                raise GitHubError("GET", path, 0, f"next page is not under {api}")
            url = path
        else:
            url = api + path
        call = Call(
            "GET",
            url,
            url.removeprefix(api).partition("?")[0],
            idempotent=True,
            params=params,
            headers={
                "Accept": MEDIA_TYPE,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
        )
        return self._transport.send(call, _Rules(token))


def role(permissions: dict[str, Any]) -> str:
    """The strongest role GitHub's `permissions` hash grants; `read` otherwise."""
    return next((name for flag, name in ROLES if permissions.get(flag)), "read")
