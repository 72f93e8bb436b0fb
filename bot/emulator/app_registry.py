"""The GitHub Apps an emulator knows: its own and those made from manifests, with their codes."""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.emulator import app_auth
from bot.emulator.github_models import EmulatedApp, UserToken, iso

# Ids of Apps made from manifests; the emulator's own App keeps the id it was given.
FIRST_NEW_APP_ID = 200_001
# "You must complete all three steps in the GitHub App Manifest flow within one hour."
MANIFEST_CODE_LIFETIME = 3600
# OAuth web flow: "The code expires after 10 minutes" (GitHub, user access tokens).
OAUTH_CODE_LIFETIME = 600
# Manifest parameters: "You can provide up to 10 callback URLs"; App names have 34 at most.
MAX_CALLBACK_URLS = 10
MAX_APP_NAME = 34
ACCESS_LEVELS = ("read", "write", "admin")
# Webhook events and the permissions that let an App receive them (GitHub refuses an App
# that subscribes to an event none of its permissions covers).
EVENT_PERMISSIONS = {
    "check_run": ("checks",),
    "check_suite": ("checks",),
    "deployment": ("deployments",),
    "deployment_status": ("deployments",),
    "issue_comment": ("issues", "pull_requests"),
    "issues": ("issues",),
    "label": ("metadata",),
    "membership": ("members",),
    "pull_request": ("pull_requests",),
    "pull_request_review": ("pull_requests",),
    "push": ("contents",),
    "status": ("statuses",),
    "team": ("members",),
}

# OAuth answers to a refused code exchange (GitHub, "Troubleshooting OAuth App access token
# request errors"), verbatim.
_OAUTH_DOCS = (
    "https://docs.github.com/apps/managing-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors/"
)
OAUTH_ERRORS = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        f"{_OAUTH_DOCS}#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "https://docs.github.com/apps/managing-oauth-apps/"
        "troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
    ),
    "bad_verification_code": (
        "The code passed is incorrect or expired.",
        f"{_OAUTH_DOCS}#bad-verification-code",
    ),
}


class ManifestRefused(ValueError):
    """A manifest GitHub would not register an App from; the message lists why."""


class CodeRefused(Exception):
    """A manifest code that converts to nothing: `status` 404 (never issued) or 422 (spent)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OAuthRefused(Exception):
    """A refused OAuth code exchange; `error` is one of OAUTH_ERRORS."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error

    def as_json(self) -> dict[str, str]:
        description, uri = OAUTH_ERRORS[self.error]
        return {"error": self.error, "error_description": description, "error_uri": uri}


@dataclass
class _ManifestCode:
    app_id: str
    expires_at: float
    used: bool = False


@dataclass
class _OAuthCode:
    client_id: str
    login: str
    redirect_uri: str
    expires_at: float
    used: bool = False


def slugify(name: str) -> str:
    """GitHub's slug of an App name: lower case, other characters runs of one dash."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


def manifest_problems(manifest: Any) -> list[str]:
    """Why GitHub's "new App from a manifest" page would refuse `manifest` (none: fine)."""
    if not isinstance(manifest, dict):
        return ["The manifest must be a JSON object."]
    problems = []
    if not isinstance(manifest.get("url"), str) or not manifest["url"]:
        problems.append("url is required: the homepage of the GitHub App.")
    name = manifest.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_APP_NAME):
        problems.append(f"name must be a string of at most {MAX_APP_NAME} characters.")
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, dict) or not isinstance(hook.get("url"), str)):
        problems.append("hook_attributes.url is required when hook_attributes is given.")
    for key in ("redirect_url", "setup_url", "description"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            problems.append(f"{key} must be a string.")
    callbacks = manifest.get("callback_urls", [])
    if not isinstance(callbacks, list) or not all(isinstance(u, str) for u in callbacks):
        problems.append("callback_urls must be a list of URLs.")
    elif len(callbacks) > MAX_CALLBACK_URLS:
        problems.append(f"callback_urls has more than {MAX_CALLBACK_URLS} URLs.")
    permissions = manifest.get("default_permissions", {})
    if not isinstance(permissions, dict) or not all(
        isinstance(v, str) and v in ACCESS_LEVELS for v in permissions.values()
    ):
        problems.append("default_permissions must map permission names to read, write or admin.")
        permissions = {}
    events = manifest.get("default_events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        problems.append("default_events must be a list of event names.")
    else:
        uncovered = [
            event
            for event in events
            if event in EVENT_PERMISSIONS
            and not any(name in permissions for name in EVENT_PERMISSIONS[event])
        ]
        if uncovered:
            problems.append(
                f"Default events are not supported by the permissions: {', '.join(uncovered)}."
            )
    return problems


class AppRegistry:
    """Apps by id, the codes of the manifest and OAuth web flows, and user access tokens."""

    def __init__(self, own: EmulatedApp) -> None:
        self.own = own
        self._lock = threading.Lock()
        self._apps: dict[str, EmulatedApp] = {own.id: own}
        self._ids = itertools.count(FIRST_NEW_APP_ID)
        self._manifest_codes: dict[str, _ManifestCode] = {}
        self._oauth_codes: dict[str, _OAuthCode] = {}
        self._user_tokens: dict[str, UserToken] = {}

    def apps(self) -> list[EmulatedApp]:
        """Every App, the emulator's own first."""
        with self._lock:
            return list(self._apps.values())

    def find(self, identifier: str) -> EmulatedApp | None:
        """The App whose id, client id or slug is `identifier`."""
        with self._lock:
            if identifier in self._apps:
                return self._apps[identifier]
            return next(
                (a for a in self._apps.values() if identifier in (a.client_id, a.slug)), None
            )

    def by_issuer(self, issuer: str) -> EmulatedApp | None:
        """The App a JWT's `iss` names: its id or its client id."""
        with self._lock:
            if issuer in self._apps:
                return self._apps[issuer]
            return next((a for a in self._apps.values() if a.client_id == issuer), None)

    def by_client_id(self, client_id: str) -> EmulatedApp | None:
        """The App whose OAuth client id is `client_id`."""
        with self._lock:
            return next((a for a in self._apps.values() if a.client_id == client_id), None)

    # -- the manifest flow --------------------------------------------------------------------

    def create_from_manifest(
        self, manifest: Mapping[str, Any], owner: str, now: float
    ) -> tuple[EmulatedApp, str]:
        """Register an App owned by `owner` as the manifest describes; returns it and the code
        that converts it (once, within the hour). ManifestRefused if GitHub would refuse it."""
        problems = manifest_problems(manifest)
        if problems:
            raise ManifestRefused(" ".join(problems))
        pem, public_key = app_auth.new_private_key()
        hook = manifest.get("hook_attributes") or {}
        with self._lock:
            app_id = str(next(self._ids))
            # A taken name is edited on GitHub's page before the App is created; the emulator
            # stands in for that person by numbering it.
            name = manifest.get("name") or f"{owner}-app"
            taken = {a.slug for a in self._apps.values()}
            base, number = name, 1
            while slugify(name) in taken:
                number += 1
                name = f"{base}-{number}"
            app = EmulatedApp(
                id=app_id,
                slug=slugify(name),
                name=name,
                owner=owner,
                client_id=f"Iv1.{secrets.token_hex(8)}",
                client_secret=secrets.token_hex(20),
                webhook_secret=secrets.token_hex(20) if hook.get("url") else None,
                private_key_pem=pem,
                public_key=public_key,
                # Every App may read metadata, asked for or not.
                permissions={"metadata": "read", **(manifest.get("default_permissions") or {})},
                events=list(manifest.get("default_events") or []),
                created_at=iso(now),
                hook_url=hook.get("url"),
                hook_active=bool(hook.get("active", True)),
                redirect_url=manifest.get("redirect_url"),
                callback_urls=list(manifest.get("callback_urls") or []),
                setup_url=manifest.get("setup_url"),
                description=manifest.get("description"),
                external_url=str(manifest["url"]),
                public=bool(manifest.get("public", False)),
            )
            self._apps[app.id] = app
            code = secrets.token_hex(10)
            self._manifest_codes[code] = _ManifestCode(app.id, now + MANIFEST_CODE_LIFETIME)
            return app, code

    def convert(self, code: str, now: float) -> EmulatedApp:
        """The App a manifest code names, once; CodeRefused for a code never issued (404)
        and for one used or older than an hour (422)."""
        with self._lock:
            found = self._manifest_codes.get(code)
            if found is None:
                raise CodeRefused(404, "Not Found")
            if found.used or now >= found.expires_at:
                raise CodeRefused(422, "The code has expired or has already been used.")
            found.used = True
            return self._apps[found.app_id]

    # -- the OAuth web flow -------------------------------------------------------------------

    def authorize(self, app: EmulatedApp, login: str, redirect_uri: str, now: float) -> str:
        """A code for `login` having authorized `app`, good for ten minutes and one exchange."""
        code = secrets.token_hex(10)
        with self._lock:
            self._oauth_codes[code] = _OAuthCode(
                app.client_id, login, redirect_uri, now + OAUTH_CODE_LIFETIME
            )
        return code

    def exchange(
        self, client_id: str, client_secret: str, code: str, redirect_uri: str | None, now: float
    ) -> UserToken:
        """A user access token for an authorized code; OAuthRefused as GitHub refuses."""
        app = self.by_client_id(client_id)
        if app is None or not secrets.compare_digest(
            client_secret.encode(), app.client_secret.encode()
        ):
            raise OAuthRefused("incorrect_client_credentials")
        with self._lock:
            grant = self._oauth_codes.get(code)
            if (
                grant is None
                or grant.used
                or now >= grant.expires_at
                or grant.client_id != app.client_id
            ):
                raise OAuthRefused("bad_verification_code")
            if redirect_uri and redirect_uri != grant.redirect_uri:
                raise OAuthRefused("redirect_uri_mismatch")
            grant.used = True
            token = UserToken(app_auth.new_user_token(), grant.login, app.id, now)
            self._user_tokens[token.token] = token
            return token

    def user_token(self, value: str) -> UserToken | None:
        """The user access token `value`, if the emulator issued it."""
        with self._lock:
            return self._user_tokens.get(value)
