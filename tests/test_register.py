"""`mlgate register` end to end: the manifest flow against the emulated github.com, no browser."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
import requests

from bot.app_registration import Registration, load_env_file
from bot.core.app_manifest import parse_env_file
from bot.emulator import GitHubEmulator
from bot.loopback import serve

SPEC_PATH = Path(__file__).parent / "fixtures" / "github" / "openapi-subset.json"
PUBLIC_URL = "https://mlgate.example.com"


@dataclass
class Form:
    action: str
    fields: dict[str, str]


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1].fields[values["name"]] = values.get("value", "")


def read_form(page: str) -> Form:
    """The page's one form, its entities decoded as a browser decodes them."""
    reader = _FormReader()
    reader.feed(page)
    assert len(reader.forms) == 1, page
    return reader.forms[0]


def press_the_button(page_url: str) -> requests.Response:
    """What the browser does: load the page, post its form to GitHub, get sent back."""
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200
    form = read_form(page.text)
    sent = requests.post(form.action, data=form.fields, allow_redirects=False, timeout=5)
    assert sent.status_code == 302, sent.text
    return sent


def app_get(emu: GitHubEmulator, app_id: str, pem: str) -> requests.Response:
    now = int(time.time())
    token = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": app_id}, pem, algorithm="RS256")
    return requests.get(f"{emu.url}/app", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(openapi_path=SPEC_PATH, root=tmp_path / "github") as emu:
        emu.sign_in("octocat")
        yield emu


def registration(
    emu: GitHubEmulator, env_path: Path, *, teams: bool = False, org: str | None = None
) -> Registration:
    """The registration `mlgate register` runs, with the emulator as github.com and its API."""
    return Registration(emu.url, emu.url, PUBLIC_URL, env_path, org=org, teams=teams)


def test_register_writes_a_private_env_whose_key_the_app_authenticates_with(
    emu: GitHubEmulator, tmp_path: Path
) -> None:
    env_path = tmp_path / "deploy" / ".env"
    env_path.parent.mkdir()
    flow = registration(emu, env_path)
    with serve(flow.app) as url:
        sent = press_the_button(f"{url}/")
        back = sent.headers["Location"]
        assert back.startswith(f"{url}/callback?")
        done = requests.get(back, timeout=5)
    assert done.status_code == 200, done.text
    assert flow.done.is_set() and flow.error is None

    assert mode(env_path) == 0o600
    values = parse_env_file(env_path.read_text())
    assert set(values) == {
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY_PATH",
        "GITHUB_WEBHOOK_SECRET",
        "GITHUB_CLIENT_ID",
        "GITHUB_CLIENT_SECRET",
        "MLGATE_PUBLIC_URL",
    }
    app = emu.registered_app(values["GITHUB_APP_ID"])
    key_path = env_path.parent / values["GITHUB_PRIVATE_KEY_PATH"]
    assert key_path.parent == env_path.parent  # the key lies beside the .env
    assert mode(key_path) == 0o600
    assert key_path.read_text() == app.private_key_pem
    answer = app_get(emu, values["GITHUB_APP_ID"], key_path.read_text())
    assert answer.status_code == 200
    assert str(answer.json()["id"]) == values["GITHUB_APP_ID"]
    assert values["GITHUB_WEBHOOK_SECRET"] == app.webhook_secret
    assert (values["GITHUB_CLIENT_ID"], values["GITHUB_CLIENT_SECRET"]) == (
        app.client_id,
        app.client_secret,
    )
    assert values["MLGATE_PUBLIC_URL"] == PUBLIC_URL

    assert app.hook_url == f"{PUBLIC_URL}/webhooks/github"
    assert app.callback_urls == [f"{PUBLIC_URL}/auth/callback"]
    assert app.owner == "octocat"
    assert "members" not in app.permissions
    assert {"checks": "write", "pull_requests": "write"}.items() <= app.permissions.items()


def test_teams_ask_for_members_read_and_an_org_owns_its_app(
    emu: GitHubEmulator, tmp_path: Path
) -> None:
    flow = registration(emu, tmp_path / ".env", teams=True, org="acme")
    with serve(flow.app) as url:
        sent = press_the_button(f"{url}/")
        assert urlsplit(sent.request.url or "").path == "/organizations/acme/settings/apps/new"
        assert requests.get(sent.headers["Location"], timeout=5).status_code == 200
    app = emu.registered_app(parse_env_file((tmp_path / ".env").read_text())["GITHUB_APP_ID"])
    assert app.permissions["members"] == "read"
    assert app.owner == "acme"


def test_a_callback_with_another_state_exchanges_nothing(
    emu: GitHubEmulator, tmp_path: Path
) -> None:
    flow = registration(emu, tmp_path / ".env")
    with serve(flow.app) as url:
        sent = press_the_button(f"{url}/")
        code = dict(parse_qsl(urlsplit(sent.headers["Location"]).query))["code"]
        forged = requests.get(f"{url}/callback", params={"code": code, "state": "x"}, timeout=5)
        assert forged.status_code == 400
        assert not flow.done.is_set()
        assert not (tmp_path / ".env").exists()
    # The code was never exchanged: it still converts, once.
    assert requests.post(f"{emu.url}/app-manifests/{code}/conversions", timeout=5).ok


def test_a_code_is_exchanged_once(emu: GitHubEmulator, tmp_path: Path) -> None:
    flow = registration(emu, tmp_path / "one" / ".env")
    (tmp_path / "one").mkdir()
    with serve(flow.app) as url:
        back = press_the_button(f"{url}/").headers["Location"]
        assert requests.get(back, timeout=5).status_code == 200
        assert requests.get(back, timeout=5).status_code == 409  # this registration is done
    code = dict(parse_qsl(urlsplit(back).query))["code"]
    other = registration(emu, tmp_path / "two.env")
    with serve(other.app) as url:
        again = requests.get(f"{url}/callback", params={"code": code, "state": other.state})
    assert again.status_code == 502
    assert "one exchange" in again.text
    assert other.error is not None
    assert not (tmp_path / "two.env").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["github", "one"]


def test_an_env_file_that_appears_meanwhile_is_kept_and_the_code_is_not_spent(
    emu: GitHubEmulator, tmp_path: Path
) -> None:
    env_path = tmp_path / ".env"
    flow = registration(emu, env_path)
    flow.check_paths()
    with serve(flow.app) as url:
        back = press_the_button(f"{url}/").headers["Location"]
        env_path.write_text("GITHUB_APP_ID=mine\n")
        answer = requests.get(back, timeout=5)
    assert answer.status_code == 502
    assert env_path.read_text() == "GITHUB_APP_ID=mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "github"]
    code = dict(parse_qsl(urlsplit(back).query))["code"]
    assert requests.post(f"{emu.url}/app-manifests/{code}/conversions", timeout=5).ok


def test_a_key_file_left_by_an_earlier_app_is_kept(emu: GitHubEmulator, tmp_path: Path) -> None:
    flow = registration(emu, tmp_path / ".env")
    with serve(flow.app) as url:
        back = press_the_button(f"{url}/").headers["Location"]
        earlier = tmp_path / f"{emu.apps.apps()[-1].slug}.private-key.pem"
        earlier.write_text("an earlier App's key\n")
        assert requests.get(back, timeout=5).status_code == 200
    assert earlier.read_text() == "an earlier App's key\n"
    values = parse_env_file((tmp_path / ".env").read_text())
    assert values["GITHUB_PRIVATE_KEY_PATH"] != earlier.name
    assert app_get(
        emu, values["GITHUB_APP_ID"], (tmp_path / values["GITHUB_PRIVATE_KEY_PATH"]).read_text()
    ).ok


def _cli(emu: GitHubEmulator, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLGATE_"))}
    env["GITHUB_API_URL"] = emu.url
    argv = [sys.executable, "-m", "bot.cli", "register", "--public-url", PUBLIC_URL]
    argv += ["--github-url", emu.url, "--env-file", str(tmp_path / ".env"), "--no-browser"]
    return subprocess.Popen(
        [*argv, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_the_register_command_end_to_end(
    emu: GitHubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = _cli(emu, tmp_path)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"Open (http://127\.0\.0\.1:\d+)/ ", first)
        assert found, first
        sent = press_the_button(f"{found.group(1)}/")
        assert requests.get(sent.headers["Location"], timeout=5).status_code == 200
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Wrote" in out and "(mode 0600)" in out
    assert mode(tmp_path / ".env") == 0o600
    # What `mlgate serve` then reads: the key path resolved beside the file.
    for name in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY_PATH", "GITHUB_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    assert "GITHUB_APP_ID" in load_env_file(tmp_path / ".env")
    key = Path(os.environ["GITHUB_PRIVATE_KEY_PATH"])
    assert key.is_absolute() and key.parent == tmp_path
    assert app_get(emu, os.environ["GITHUB_APP_ID"], key.read_text()).status_code == 200


def test_the_register_command_never_overwrites_an_env_file(
    emu: GitHubEmulator, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("KEEP=1\n")
    process = _cli(emu, tmp_path)
    try:
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode != 0
    assert "exists" in err and "--env-file" in err
    assert (tmp_path / ".env").read_text() == "KEEP=1\n"
    assert len(emu.apps.apps()) == 1  # nothing was registered
