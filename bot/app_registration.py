"""`mlgate register`: the GitHub App manifest flow, writing the `.env` that mlgate then reads.

A local page posts the manifest to GitHub; GitHub sends the browser back with a `code`,
which `POST /app-manifests/{code}/conversions` exchanges for the App's id, private key,
webhook secret and OAuth credentials (GitHub: "Registering a GitHub App from a manifest").
"""

from __future__ import annotations

import html
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import requests

from bot.core import app_manifest
from bot.errors import MlgateError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

# GitHub lets a manifest code be exchanged within an hour; a registration waits that long.
CODE_LIFETIME = 3600


class RegistrationError(MlgateError):
    """The manifest flow could not finish; the message says what to do."""


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600), never replacing a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass
class Registration:
    """One run of the manifest flow; `app` is the WSGI app the browser talks to."""

    github_url: str
    api_url: str
    public_url: str
    env_path: Path
    org: str | None = None
    teams: bool = False
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    done: threading.Event = field(default_factory=threading.Event)
    written: Path | None = None
    error: str | None = None
    # Taken by the one callback that exchanges: a second one, even at the same instant,
    # must not spend the code again or report its failure over the first one's success.
    _claim: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def check_paths(self) -> None:
        """Refuse before anything happens on GitHub if the `.env` would be overwritten."""
        if self.env_path.exists():
            raise RegistrationError(
                f"{self.env_path} exists; move it away or pass --env-file for another file"
            )

    def page(self, redirect_url: str) -> str:
        manifest = app_manifest.manifest(self.public_url, redirect_url, teams=self.teams)
        action = app_manifest.new_app_url(self.github_url, self.state, self.org)
        return (
            "<!doctype html><meta charset=utf-8><title>Register mlgate</title>"
            "<h1>Register mlgate as a GitHub App</h1>"
            f"<p>Webhooks will go to <code>{html.escape(self.public_url)}/webhooks/github</code>."
            f'<form method=post action="{html.escape(action)}">'
            f'<input type=hidden name=manifest value="{html.escape(json.dumps(manifest))}">'
            "<button type=submit>Create the App on GitHub</button></form>"
        )

    def exchange(self, code: str) -> Path:
        # Checked again before the code is spent: GitHub hands the private key out once.
        self.check_paths()
        url = f"{self.api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
        try:
            response = requests.post(
                url, headers={"Accept": "application/vnd.github+json"}, timeout=30
            )
        except requests.RequestException as exc:
            raise RegistrationError(f"could not reach GitHub at {url}: {exc}") from exc
        if response.status_code != 201:
            raise RegistrationError(
                f"GitHub answered {response.status_code} to the code exchange "
                "(a code is good for one hour and one exchange): run `mlgate register` again"
            )
        conversion: dict[str, Any] = response.json()
        slug = conversion.get("slug") or "mlgate"
        key_path = self.env_path.with_name(f"{slug}.private-key.pem")
        if key_path.exists():
            # A key of an earlier App of that name (deleted on GitHub, slug free again).
            key_path = self.env_path.with_name(f"{slug}-{conversion['id']}.private-key.pem")
        write_private(key_path, str(conversion["pem"]))
        text = app_manifest.env_file(conversion, key_path.name, self.public_url)
        try:
            write_private(self.env_path, text)
        except FileExistsError:
            raise RegistrationError(
                f"{self.env_path} appeared meanwhile and is kept; the App {slug} is registered "
                f"and its private key is in {key_path}: write its settings by hand (a new client "
                "secret and webhook secret can be generated on its GitHub settings page)"
            ) from None
        log.info("registered GitHub App %s", slug)
        return self.env_path

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        if path == "/":
            return _html(start_response, "200 OK", self.page(f"http://{host}/callback"))
        if path != "/callback":
            return _html(start_response, "404 Not Found", "not found")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        given = query.get("state", [""])[0]
        if not secrets.compare_digest(given.encode(), self.state.encode()):
            # Another page's redirect, or a forged one: nothing is exchanged.
            return _html(start_response, "400 Bad Request", "state does not match; start again")
        if self.done.is_set() or not self._claim.acquire(blocking=False):
            return _html(start_response, "409 Conflict", "this registration is finished")
        try:
            self.written = self.exchange(query.get("code", [""])[0])
        except (RegistrationError, OSError) as exc:
            self.error = str(exc)
            return _html(start_response, "502 Bad Gateway", html.escape(self.error))
        finally:
            self.done.set()
        return _html(
            start_response,
            "200 OK",
            f"Registered. mlgate wrote <code>{html.escape(str(self.written))}</code>; "
            "install the App on your repositories, then run <code>mlgate serve</code>.",
        )


def _html(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8")])
    return [data]


def load_env_file(path: Path) -> list[str]:
    """Put `path`'s values into this process's environment where they are not set already
    (the real environment wins); a relative key path is read beside the file. Returns the
    names it set."""
    if not path.is_file():
        return []
    try:
        values = app_manifest.parse_env_file(path.read_text())
    except ValueError as exc:
        raise MlgateError(f"{path}: {exc}") from exc
    key = values.get("GITHUB_PRIVATE_KEY_PATH")
    if key and not Path(key).is_absolute():
        values["GITHUB_PRIVATE_KEY_PATH"] = str(path.resolve().parent / key)
    set_now = [name for name in values if name not in os.environ]
    for name in set_now:
        os.environ[name] = values[name]
    return set_now
