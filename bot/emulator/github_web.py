"""GitHub's web side on the emulator: the OAuth web flow and the App-manifest pages."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from bot.emulator.app_registry import OAUTH_ERRORS, ManifestRefused, OAuthRefused
from bot.emulator.github_state import GitHubState

# The paths github.com serves, which never collide with api.github.com's: the emulator's one
# base URL stands for both.
_PAGES = Map(
    [
        Rule("/login", endpoint="login", methods=["GET"]),
        Rule("/login/oauth/authorize", endpoint="authorize", methods=["GET"]),
        Rule("/login/oauth/access_token", endpoint="access_token", methods=["POST"]),
        Rule("/settings/apps/new", endpoint="new_app", methods=["POST"]),
        Rule("/organizations/<org>/settings/apps/new", endpoint="new_app", methods=["POST"]),
    ],
    strict_slashes=False,
)


def with_query(url: str, **params: str | None) -> str:
    """`url` with `params` (those not None) added to its query."""
    parts = urlsplit(url)
    added = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{added}" if parts.query and added else parts.query or added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(status: int, title: str, text: str) -> Response:
    body = f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
    body += f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _redirect(location: str) -> Response:
    return Response("", status=302, headers={"Location": location})


class WebFlows:
    """github.com's pages where no human is: the person "signed in" (`emu.sign_in`) agrees
    to whatever is asked, and the browser is sent on as GitHub sends it."""

    def __init__(self, emu: GitHubState) -> None:
        self.emu = emu

    def serves(self, path: str) -> bool:
        """True for a path of github.com rather than of the API."""
        try:
            _PAGES.bind("127.0.0.1").match(path, method="GET")
        except MethodNotAllowed:
            return True
        except NotFound:
            return False
        return True

    def respond(self, request: Request) -> Response:
        try:
            endpoint, params = _PAGES.bind("127.0.0.1").match(request.path, request.method)
        except MethodNotAllowed:
            return _page(405, "Method not allowed", f"{request.method} {request.path}")
        except NotFound:
            return _page(404, "Not Found", request.path)
        if endpoint == "login":
            return _page(200, "Sign in to GitHub", "The emulator signs people in: emu.sign_in().")
        if endpoint == "authorize":
            return self.authorize(request)
        if endpoint == "access_token":
            return self.access_token(request)
        return self.new_app(request, params.get("org"))

    def _to_login(self, request: Request) -> Response:
        # GitHub sends a visitor who is not signed in to its login page, and back afterwards.
        back = request.full_path.rstrip("?")
        return _redirect(with_query(f"{self.emu.url}/login", return_to=back))

    # -- the OAuth web flow (a GitHub App's user authorization) -------------------------------

    def authorize(self, request: Request) -> Response:
        args = request.args
        app = self.emu.apps.by_client_id(args.get("client_id", ""))
        if app is None:
            return _page(404, "Not Found", "No application has this client_id.")
        state = args.get("state")
        redirect_uri = args.get("redirect_uri")
        if not app.callback_urls:
            return _page(400, "No callback URL", f"The App {app.slug} has no callback URL.")
        if redirect_uri is None:
            # "If left out, GitHub will redirect users to the callback URL" of the App.
            redirect_uri = app.callback_urls[0]
        elif redirect_uri not in app.callback_urls:
            # It "must be an exact match to one of the URLs you provided as a Callback URL";
            # GitHub tells the App's first callback URL about the mismatch.
            description, uri = OAUTH_ERRORS["redirect_uri_mismatch"]
            return _redirect(
                with_query(
                    app.callback_urls[0],
                    error="redirect_uri_mismatch",
                    error_description=description,
                    error_uri=uri,
                    state=state,
                )
            )
        login = self.emu.signed_in
        if login is None:
            return self._to_login(request)
        code = self.emu.apps.authorize(app, login, redirect_uri, self.emu.clock())
        return _redirect(with_query(redirect_uri, code=code, state=state))

    def access_token(self, request: Request) -> Response:
        # GitHub reads the parameters from the query, a form or a JSON body alike.
        given: dict[str, Any] = dict(request.args.items())
        given.update(request.form.items())
        if request.is_json:
            body = request.get_json(silent=True)
            if isinstance(body, dict):
                given.update(body)
        try:
            token = self.emu.apps.exchange(
                str(given.get("client_id") or ""),
                str(given.get("client_secret") or ""),
                str(given.get("code") or ""),
                given.get("redirect_uri") or None,
                self.emu.clock(),
            )
            answer: dict[str, str] = {
                "access_token": token.token,
                "token_type": "bearer",
                "scope": "",
            }
        except OAuthRefused as refused:
            # A refused exchange is still 200: the error is in the body.
            answer = refused.as_json()
        if "application/json" in request.headers.get("Accept", ""):
            return Response(json.dumps(answer), content_type="application/json; charset=utf-8")
        # Without Accept: application/json, GitHub answers form-encoded.
        return Response(urlencode(answer), content_type="application/x-www-form-urlencoded")

    # -- the App-manifest flow ----------------------------------------------------------------

    def new_app(self, request: Request, org: str | None) -> Response:
        login = self.emu.signed_in
        if login is None:
            return self._to_login(request)
        owner = login
        if org is not None:
            with self.emu._lock:
                account = self.emu._users.get(org)
            if account is not None and account.type != "Organization":
                return _page(404, "Not Found", f"{org} is not an organization.")
            self.emu.add_user(org, "Organization")
            owner = org
        try:
            manifest = json.loads(request.form.get("manifest", ""))
        except ValueError:
            return _page(422, "Invalid GitHub App manifest", "manifest is not JSON.")
        try:
            app, code = self.emu.apps.create_from_manifest(manifest, owner, self.emu.clock())
        except ManifestRefused as refused:
            return _page(422, "Invalid GitHub App manifest", str(refused))
        state = request.args.get("state") or request.form.get("state")
        if not app.redirect_url:
            # Without redirect_url the person lands on the new App's settings.
            return _redirect(f"https://github.com/settings/apps/{app.slug}")
        return _redirect(with_query(app.redirect_url, code=code, state=state))
