"""The GitHub App manifest mlgate registers itself with, and the `.env` the registration writes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

# What mlgate needs of GitHub (docs/operating.md, Registering the GitHub App). Members read
# only where deploy approvers name teams: GitHub asks an organisation's owner to grant every
# permission.
PERMISSIONS = {
    "checks": "write",
    "pull_requests": "write",
    "issues": "write",
    "contents": "read",
    "metadata": "read",
    "deployments": "write",
}
TEAMS_PERMISSION = {"members": "read"}
EVENTS = ("push", "pull_request", "issue_comment", "check_run", "check_suite")


def manifest(
    public_url: str, redirect_url: str, *, name: str = "mlgate", teams: bool = False
) -> dict[str, Any]:
    """The manifest GitHub's "new App from a manifest" page takes (`POST …/settings/apps/new`)."""
    base = public_url.rstrip("/")
    return {
        "name": name,
        "url": "https://github.com/mlgate/mlgate",
        "hook_attributes": {"url": f"{base}/webhooks/github", "active": True},
        "redirect_url": redirect_url,
        # The dashboard's "Sign in with GitHub" comes back here.
        "callback_urls": [f"{base}/auth/callback"],
        "public": False,
        "default_permissions": PERMISSIONS | (TEAMS_PERMISSION if teams else {}),
        "default_events": list(EVENTS),
    }


def new_app_url(github_url: str, state: str, org: str | None = None) -> str:
    """Where the manifest is posted: the user's Apps, or an organisation's."""
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{github_url.rstrip('/')}{owner}/settings/apps/new?{urlencode({'state': state})}"


def env_file(conversion: Mapping[str, Any], key_path: str, public_url: str) -> str:
    """`.env` lines from GitHub's answer to `POST /app-manifests/{code}/conversions`."""
    values = {
        "GITHUB_APP_ID": str(conversion["id"]),
        "GITHUB_PRIVATE_KEY_PATH": key_path,
        "GITHUB_WEBHOOK_SECRET": str(conversion["webhook_secret"]),
        "GITHUB_CLIENT_ID": str(conversion["client_id"]),
        "GITHUB_CLIENT_SECRET": str(conversion["client_secret"]),
        "MLGATE_PUBLIC_URL": public_url.rstrip("/"),
    }
    header = f"# The GitHub App {conversion.get('slug', '')} ({conversion.get('html_url', '')})"
    return header + "\n" + "".join(f"{k}={quote_value(v)}\n" for k, v in values.items())


def quote_value(value: str) -> str:
    """A value as `.env` readers (ours, docker compose, systemd's EnvironmentFile) read it."""
    if value and all(c.isalnum() or c in "-_./:@+=," for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments, blank lines, `export `, and single or double quotes
    (double quotes with `\\n`, `\\"` and `\\\\` escapes)."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise ValueError(f"line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = _unescape(value[1:-1])
        found[name] = value
    return found


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)
