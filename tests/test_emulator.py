"""The GitHub emulator, proved over real HTTP with `requests` against real git repositories."""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

import bot.emulator
from bot.emulator import EmulatedRepo, GitHubEmulator, RecordedRequest
from bot.emulator.openapi import load_spec
from bot.loopback import LoopbackError, LoopbackServer

SPEC_PATH = Path(__file__).parent / "fixtures" / "github" / "openapi-subset.json"
INSTALLATION = 42


# -- helpers ---------------------------------------------------------------------------------


@functools.cache
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    # Loading a PEM checks the key's consistency, ~0.1 s each time: load each key once.
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def app_jwt(emu: GitHubEmulator, key: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now - 60, "exp": now + 540, "iss": emu.app_id}
    payload.update(claims)
    return jwt.encode(payload, _private_key(key or emu.app_private_key_pem), algorithm="RS256")


def new_token(emu: GitHubEmulator, installation_id: int = INSTALLATION, **body: Any) -> str:
    response = requests.post(
        f"{emu.url}/app/installations/{installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        json=body or None,
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


class Client:
    """requests against the emulator with one installation token."""

    def __init__(self, emu: GitHubEmulator, token: str) -> None:
        self.emu = emu
        self.token = token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("http") else f"{self.emu.url}{path}"
        return requests.request(method, url, headers=headers, timeout=5, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, json=body, **kwargs)


def writer_token(emu: GitHubEmulator) -> str:
    """A token of the installation once it has granted Contents: write (the Git Data API)."""
    emu.add_installation(
        INSTALLATION, "octo", permissions={**emu.installation_permissions, "contents": "write"}
    )
    return new_token(emu)


CALLBACK = "http://127.0.0.1:9/auth/callback"


def query_of(location: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(location).query))


def user_token(emu: GitHubEmulator, login: str) -> str:
    """A user access token of the emulator's App for `login`, through the OAuth web flow."""
    if CALLBACK not in emu.github_app.callback_urls:
        emu.github_app.callback_urls.append(CALLBACK)
    emu.sign_in(login)
    authorize = requests.get(
        f"{emu.url}/login/oauth/authorize",
        params={"client_id": emu.github_app.client_id, "redirect_uri": CALLBACK, "state": "s1"},
        allow_redirects=False,
        timeout=5,
    )
    assert authorize.status_code == 302, authorize.text
    code = query_of(authorize.headers["Location"])["code"]
    exchanged = requests.post(
        f"{emu.url}/login/oauth/access_token",
        data={
            "client_id": emu.github_app.client_id,
            "client_secret": emu.github_app.client_secret,
            "code": code,
        },
        headers={"Accept": "application/json"},
        timeout=5,
    )
    return str(exchanged.json()["access_token"])


MANIFEST: dict[str, Any] = {
    "name": "mlgate",
    "url": "https://github.com/mlgate/mlgate",
    "hook_attributes": {"url": "https://mlgate.example.com/webhooks/github", "active": True},
    "redirect_url": "http://127.0.0.1:9/callback",
    "callback_urls": ["https://mlgate.example.com/auth/callback"],
    "public": False,
    "default_permissions": {"checks": "write", "contents": "read", "pull_requests": "write"},
    "default_events": ["push", "pull_request", "check_run"],
}


def post_manifest(
    emu: GitHubEmulator, manifest: Any, state: str = "st", org: str | None = None
) -> requests.Response:
    """The browser posting the registration page's form to github.com."""
    owner = f"/organizations/{org}" if org else ""
    return requests.post(
        f"{emu.url}{owner}/settings/apps/new?state={state}",
        data={"manifest": json.dumps(manifest)},
        allow_redirects=False,
        timeout=5,
    )


def manifest_code(emu: GitHubEmulator, manifest: Any = None, org: str | None = None) -> str:
    emu.sign_in(emu.signed_in or "octocat")
    response = post_manifest(emu, MANIFEST if manifest is None else manifest, org=org)
    assert response.status_code == 302, response.text
    return query_of(response.headers["Location"])["code"]


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def links(response: requests.Response) -> dict[str, str]:
    return {
        rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers["Link"])
    }


class Receiver(LoopbackServer):
    """A tiny webhook receiver: records each request and answers the queued statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        super().__init__(self._receive, name="webhook-receiver")
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/webhooks/github"

    def _receive(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.received.append((dict(request.headers), request.get_data()))
        status = self.statuses.pop(0) if self.statuses else 202
        return Response("{}", status=status)(environ, start_response)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(app_id="1", openapi_path=SPEC_PATH, root=tmp_path / "github") as emu:
        yield emu


@pytest.fixture
def repo(emu: GitHubEmulator) -> EmulatedRepo:
    return emu.create_repo(
        "octo/ml",
        installation_id=INSTALLATION,
        files={"params.yaml": "lr: 0.1\n", "src/train.py": "print('train')\n"},
    )


@pytest.fixture
def gh(emu: GitHubEmulator, repo: EmulatedRepo) -> Client:
    return Client(emu, new_token(emu))


@pytest.fixture
def pr(emu: GitHubEmulator, repo: EmulatedRepo) -> dict[str, Any]:
    repo.commit("feature", {"params.yaml": "lr: 0.2\n"}, "Raise the learning rate", author="alice")
    return emu.open_pull_request("octo/ml", head="feature", base="main", user="alice")


# -- authentication --------------------------------------------------------------------------


def test_app_jwt_gets_an_installation_token_that_expires_in_an_hour(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    response = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        timeout=5,
    )
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"ghs_[A-Za-z0-9]{36}", body["token"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    expires = time.mktime(time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (time.time() + 3600)) < 5
    assert body["repository_selection"] == "all"
    assert body["permissions"]["checks"] == "write"


def test_token_for_an_unknown_installation_is_404(emu: GitHubEmulator) -> None:
    response = requests.post(
        f"{emu.url}/app/installations/999/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        timeout=5,
    )
    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"


def _other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _bad_app_authorization(emu: GitHubEmulator, case: str) -> str | None:
    now = int(time.time())
    jwts = {
        "expired": lambda: app_jwt(emu, exp=now - 1),
        "exp-too-far": lambda: app_jwt(emu, iat=now, exp=now + 601),
        "iat-in-future": lambda: app_jwt(emu, iat=now + 120, exp=now + 300),
        "wrong-iss": lambda: app_jwt(emu, iss="2"),
        "wrong-key": lambda: app_jwt(emu, key=_other_key()),
    }
    if case in jwts:
        return f"Bearer {jwts[case]()}"
    if case == "garbage":
        return "Bearer not.a.jwt"
    if case == "installation-token":
        return f"token {new_token(emu)}"
    return None


UNDECODABLE = "A JSON web token could not be decoded"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("expired", "'Expiration time' claim ('exp') must be a numeric value"),
        ("exp-too-far", "'Expiration time' claim ('exp') is too far in the future"),
        ("iat-in-future", "'Issued at' claim ('iat') must be an Integer"),
        ("wrong-iss", "Integration not found"),
        ("wrong-key", UNDECODABLE),
        ("garbage", UNDECODABLE),
        ("missing", UNDECODABLE),
        ("installation-token", UNDECODABLE),
    ],
)
def test_app_endpoints_refuse_bad_jwts_with_githubs_messages(
    emu: GitHubEmulator, repo: EmulatedRepo, case: str, message: str
) -> None:
    header = _bad_app_authorization(emu, case)
    response = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": header} if header else {},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json()["message"].startswith(message)
    assert response.json()["documentation_url"].startswith("https://docs.github.com/")


def test_jwt_iss_may_be_a_number_and_iat_may_be_backdated(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    now = int(time.time())
    # PyJWT refuses to encode a numeric iss, which GitHub (and octokit) accept: sign by hand.
    claims = json.dumps({"iat": now - 60, "exp": now + 540, "iss": 1}).encode()
    token = jwt.PyJWS().encode(claims, _private_key(emu.app_private_key_pem), algorithm="RS256")
    response = requests.get(
        f"{emu.url}/repos/octo/ml/installation",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["id"] == INSTALLATION
    assert response.json()["account"]["login"] == "octo"


@pytest.mark.parametrize(
    ("authorization", "status", "message"),
    [
        (None, 401, "Requires authentication"),
        ("token ghs_" + "x" * 36, 401, "Bad credentials"),
        ("Basic Zm9vOmJhcg==", 401, "Bad credentials"),
        ("jwt", 401, "Bad credentials"),
    ],
)
def test_repository_endpoints_need_a_valid_installation_token(
    emu: GitHubEmulator, repo: EmulatedRepo, authorization: str | None, status: int, message: str
) -> None:
    if authorization == "jwt":
        authorization = f"Bearer {app_jwt(emu)}"
    response = requests.get(
        f"{emu.url}/repos/octo/ml/contents/params.yaml",
        headers={"Authorization": authorization} if authorization else {},
        timeout=5,
    )
    assert response.status_code == status
    assert response.json()["message"] == message


def test_expired_installation_token_is_bad_credentials(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    emu.token_lifetime = 0
    gh = Client(emu, new_token(emu))
    response = gh.get("/repos/octo/ml/contents/params.yaml")
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"


def test_bearer_scheme_works_for_installation_tokens(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    token = new_token(emu)
    response = requests.get(
        f"{emu.url}/repos/octo/ml/contents/params.yaml",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200


def test_repository_outside_the_tokens_installation_is_not_found(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    emu.create_repo("other/ml", installation_id=7)
    emu.create_repo("octo/uninstalled")
    gh = Client(emu, new_token(emu))
    for name in ("other/ml", "octo/uninstalled", "octo/missing"):
        response = gh.get(f"/repos/{name}/contents/README.md")
        assert response.status_code == 404, name
        assert response.json()["message"] == "Not Found"


def test_token_narrowed_to_some_repositories_sees_only_those(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    emu.create_repo("octo/data", installation_id=INSTALLATION)
    response = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        json={"repositories": ["ml"]},
        timeout=5,
    )
    assert response.status_code == 201
    assert response.json()["repository_selection"] == "selected"
    assert [r["full_name"] for r in response.json()["repositories"]] == ["octo/ml"]
    gh = Client(emu, response.json()["token"])
    assert gh.get("/repos/octo/ml/contents/params.yaml").status_code == 200
    assert gh.get("/repos/octo/data/contents/README.md").status_code == 404

    refused = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        json={"repositories": ["nope"]},
        timeout=5,
    )
    assert refused.status_code == 422


def test_token_without_a_permission_gets_resource_not_accessible(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    gh = Client(emu, new_token(emu, permissions={"checks": "read", "contents": "read"}))
    response = gh.post(
        "/repos/octo/ml/check-runs", {"name": "mlgate/quality", "head_sha": repo.head("main")}
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Resource not accessible by integration"
    assert gh.get(f"/repos/octo/ml/commits/{repo.head('main')}/check-runs").status_code == 200

    over_asking = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        json={"permissions": {"contents": "write"}},
        timeout=5,
    )
    assert over_asking.status_code == 422


def test_requests_are_recorded_with_how_they_authenticated(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    token = new_token(emu)
    emu.clear_requests()
    requests.get(f"{emu.url}/repos/octo/ml/contents/params.yaml?ref=main", timeout=5)
    requests.get(
        f"{emu.url}/repos/octo/ml/contents/params.yaml",
        headers={"Authorization": "token ghs_nope"},
        timeout=5,
    )
    Client(emu, token).post("/repos/octo/ml/statuses/main", {"state": "success"})
    requests.get(
        f"{emu.url}/app/hook/deliveries",
        headers={"Authorization": f"Bearer {app_jwt(emu)}"},
        timeout=5,
    )
    recorded = emu.requests
    assert [r.auth for r in recorded] == ["none", "invalid", "installation", "jwt"]
    assert recorded[0] == RecordedRequest(
        "GET", "/repos/octo/ml/contents/params.yaml", {"ref": "main"}, 401, None, "none"
    )
    assert recorded[2].body == {"state": "success"}
    assert recorded[2].status == 201
    emu.clear_requests()
    assert emu.requests == []


# -- documented limits and validation --------------------------------------------------------


def test_comment_body_may_have_65536_characters_but_not_more(
    gh: Client, pr: dict[str, Any]
) -> None:
    path = f"/repos/octo/ml/issues/{pr['number']}/comments"
    assert gh.post(path, {"body": "x" * 65536}).status_code == 201
    response = gh.post(path, {"body": "x" * 65537})
    assert response.status_code == 422
    error = response.json()
    assert error["message"] == "Validation Failed"
    assert error["errors"][0]["field"] == "body"
    assert "65536" in error["errors"][0]["message"]


@pytest.mark.parametrize("field", ["summary", "text"])
def test_check_run_output_over_65535_characters_is_refused(
    gh: Client, repo: EmulatedRepo, field: str
) -> None:
    body: dict[str, Any] = {
        "name": "mlgate/quality",
        "head_sha": repo.head("main"),
        "output": {"title": "Quality", "summary": "ok"},
    }
    body["output"][field] = "x" * 65535
    assert gh.post("/repos/octo/ml/check-runs", body).status_code == 201
    body["output"][field] = "x" * 65536
    response = gh.post("/repos/octo/ml/check-runs", body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"output.{field}"
    assert "65535" in response.json()["errors"][0]["message"]


def _annotations(n: int) -> list[dict[str, Any]]:
    return [
        {
            "path": "metrics.json",
            "start_line": i + 1,
            "end_line": i + 1,
            "annotation_level": "failure",
            "message": f"gate {i}",
        }
        for i in range(n)
    ]


def test_at_most_50_annotations_per_request_and_updates_append_them(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    output = {"title": "Quality", "summary": "failed", "annotations": _annotations(51)}
    body = {"name": "mlgate/quality", "head_sha": repo.head("main"), "output": output}
    refused = gh.post("/repos/octo/ml/check-runs", body)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "output.annotations"

    output["annotations"] = _annotations(50)
    created = gh.post("/repos/octo/ml/check-runs", body)
    assert created.status_code == 201
    run_id = created.json()["id"]
    updated = gh.patch(
        f"/repos/octo/ml/check-runs/{run_id}",
        {"output": {"title": "Quality", "summary": "more", "annotations": _annotations(50)}},
    )
    assert updated.status_code == 200
    assert updated.json()["output"]["annotations_count"] == 100
    assert len(emu.check_runs("octo/ml")[0]["annotations"]) == 100


def _action(
    label: str = "Re-evaluate", identifier: str = "evaluate", description: str = "Run again"
) -> dict[str, str]:  # noqa: E501
    return {"label": label, "identifier": identifier, "description": description}


@pytest.mark.parametrize(
    ("actions", "field"),
    [
        ([_action(), _action(), _action(), _action()], "actions"),
        ([_action(label="L" * 21)], "actions[0].label"),
        ([_action(identifier="i" * 21)], "actions[0].identifier"),
        ([_action(description="d" * 41)], "actions[0].description"),
    ],
    ids=["four-actions", "label-21", "identifier-21", "description-41"],
)
def test_check_run_action_limits_are_enforced(
    gh: Client, repo: EmulatedRepo, actions: list[dict[str, str]], field: str
) -> None:
    body = {"name": "mlgate/quality", "head_sha": repo.head("main"), "actions": actions}
    response = gh.post("/repos/octo/ml/check-runs", body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_check_run_actions_at_the_limits_are_accepted(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    actions = [_action("L" * 20, f"{i}" * 20, "d" * 40) for i in range(3)]
    body = {"name": "mlgate/quality", "head_sha": repo.head("main"), "actions": actions}
    assert gh.post("/repos/octo/ml/check-runs", body).status_code == 201
    assert emu.check_runs("octo/ml")[0]["actions"] == actions


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        ("/repos/octo/ml/check-runs", {"head_sha": "main"}, "name", "missing_field"),
        ("/repos/octo/ml/check-runs", {"name": "q", "head_sha": "main", "status": "done"},
         "status", "invalid"),
        ("/repos/octo/ml/check-runs", {"name": 5, "head_sha": "main"}, "name", "invalid"),
        ("/repos/octo/ml/statuses/main", {"state": "great"}, "state", "invalid"),
        ("/repos/octo/ml/deployments", {"environment": "production"}, "ref", "missing_field"),
    ],
    ids=["missing-name", "bad-status", "name-not-string", "bad-state", "missing-ref"],
)  # fmt: skip
def test_request_bodies_are_validated_against_the_openapi_schema(
    gh: Client, repo: EmulatedRepo, path: str, body: dict[str, Any], field: str, code: str
) -> None:
    response = gh.post(path, body)
    assert response.status_code == 422
    error = response.json()
    assert error["message"] == "Validation Failed"
    assert {"resource", "field", "code", "message"} <= set(error["errors"][0])
    assert error["errors"][0]["field"] == field
    assert error["errors"][0]["code"] == code


def test_nullable_fields_accept_null_and_reaction_content_must_be_githubs(
    gh: Client, pr: dict[str, Any]
) -> None:
    status = gh.post(
        "/repos/octo/ml/statuses/feature",
        {"state": "pending", "target_url": None, "description": None, "context": "mlgate"},
    )
    assert status.status_code == 201
    comment = gh.post(f"/repos/octo/ml/issues/{pr['number']}/comments", {"body": "hi"}).json()
    response = gh.post(
        f"/repos/octo/ml/issues/comments/{comment['id']}/reactions", {"content": "thumbs_up"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "content"


def test_completing_a_check_run_without_conclusion_is_refused(
    gh: Client, repo: EmulatedRepo
) -> None:
    created = gh.post("/repos/octo/ml/check-runs", {"name": "q", "head_sha": repo.head("main")})
    response = gh.patch(
        f"/repos/octo/ml/check-runs/{created.json()['id']}", {"status": "completed"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "conclusion"


def test_malformed_json_is_400_and_unknown_routes_are_404(gh: Client, pr: dict[str, Any]) -> None:
    response = gh.call(
        "POST",
        "/repos/octo/ml/issues/1/comments",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Problems parsing JSON"
    for method, path in [("GET", "/repos/octo/ml/branches"), ("DELETE", "/repos/octo/ml/pulls/1")]:
        missing = gh.call(method, path)
        assert missing.status_code == 404
        assert missing.json()["message"] == "Not Found"
        assert "documentation_url" in missing.json()


# -- pagination and rate limits --------------------------------------------------------------


def test_comments_paginate_with_githubs_link_header(
    emu: GitHubEmulator, gh: Client, pr: dict[str, Any]
) -> None:
    for i in range(65):
        emu.add_comment("octo/ml", pr["number"], f"comment {i}", user="alice")
    path = f"/repos/octo/ml/issues/{pr['number']}/comments"

    first = gh.get(path)
    assert len(first.json()) == 30
    assert set(links(first)) == {"next", "last"}
    assert links(first)["next"] == f"{emu.url}{path}?page=2"
    assert links(first)["last"] == f"{emu.url}{path}?page=3"

    second = gh.get(links(first)["next"])
    assert [c["body"] for c in second.json()][0] == "comment 30"
    assert set(links(second)) == {"prev", "next", "last", "first"}

    third = gh.get(links(second)["next"])
    assert len(third.json()) == 5
    assert set(links(third)) == {"prev", "first"}

    capped = gh.get(path, params={"per_page": 500})
    assert len(capped.json()) == 65
    assert "Link" not in capped.headers
    small = gh.get(path, params={"per_page": 10, "page": 2})
    assert [c["body"] for c in small.json()][0] == "comment 10"
    assert links(small)["last"].endswith("per_page=10&page=7")


def test_pull_request_files_stop_at_3000(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    repo.commit("big", {f"data/{i:04}.csv": f"{i}\n" for i in range(3005)}, "Add many files")
    number = emu.open_pull_request("octo/ml", head="big", base="main", user="alice")["number"]
    path = f"/repos/octo/ml/pulls/{number}/files"
    last_page = gh.get(path, params={"per_page": 100, "page": 30})
    assert len(last_page.json()) == 100
    assert "next" not in links(last_page)
    assert gh.get(path, params={"per_page": 100, "page": 31}).json() == []
    assert emu.pull_request("octo/ml", number)["changed_files"] == 3005


def test_rate_limit_headers_count_down_for_the_installation(
    emu: GitHubEmulator, gh: Client
) -> None:
    first = gh.get("/repos/octo/ml/contents/params.yaml")
    second = Client(emu, new_token(emu)).get("/repos/octo/ml/contents/params.yaml")
    for response in (first, second):
        assert response.headers["x-ratelimit-limit"] == "5000"
        assert response.headers["x-ratelimit-resource"] == "core"
        assert int(response.headers["x-ratelimit-reset"]) > time.time()
    assert (
        int(second.headers["x-ratelimit-remaining"])
        == int(first.headers["x-ratelimit-remaining"]) - 1
    )
    assert int(second.headers["x-ratelimit-used"]) == int(first.headers["x-ratelimit-used"]) + 1
    unauthenticated = requests.get(f"{emu.url}/repos/octo/ml/contents/params.yaml", timeout=5)
    assert unauthenticated.headers["x-ratelimit-limit"] == "60"


def test_exhausted_rate_limit_is_403_with_remaining_zero(emu: GitHubEmulator, gh: Client) -> None:
    emu.rate_limit = 2
    for _ in range(2):
        assert gh.get("/repos/octo/ml/contents/params.yaml").status_code == 200
    response = gh.get("/repos/octo/ml/contents/params.yaml")
    assert response.status_code == 403
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert "API rate limit exceeded for installation ID 42" in response.json()["message"]


# -- faults ----------------------------------------------------------------------------------


def test_injected_fault_answers_the_next_matching_requests_then_stops(
    emu: GitHubEmulator, gh: Client, pr: dict[str, Any]
) -> None:
    emu.inject_fault(
        "POST",
        r"/issues/\d+/comments$",
        403,
        headers={"retry-after": "1"},
        body={"message": "You have exceeded a secondary rate limit."},
        times=2,
    )
    path = f"/repos/octo/ml/issues/{pr['number']}/comments"
    assert gh.get(path).status_code == 200  # other methods are untouched
    for _ in range(2):
        response = gh.post(path, {"body": "hi"})
        assert response.status_code == 403
        assert response.headers["retry-after"] == "1"
        assert "x-ratelimit-remaining" in response.headers
        assert response.json()["message"] == "You have exceeded a secondary rate limit."
    assert gh.post(path, {"body": "hi"}).status_code == 201
    assert [r.status for r in emu.requests if r.method == "POST" and "comments" in r.path] == [
        403,
        403,
        201,
    ]
    assert len(emu.comments("octo/ml", pr["number"])) == 1


def test_fault_without_body_is_github_shaped_and_delay_and_latency_slow_answers(
    emu: GitHubEmulator, gh: Client
) -> None:
    emu.inject_fault("*", "contents", 502, delay=0.2)
    started = time.monotonic()
    response = gh.get("/repos/octo/ml/contents/params.yaml")
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 502
    assert response.json()["message"] == "Bad Gateway"

    emu.latency = 0.15
    started = time.monotonic()
    assert gh.get("/repos/octo/ml/contents/params.yaml").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_stop_interrupts_delays_and_leaves_no_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    emu = GitHubEmulator(root=tmp_path).start()
    emu.create_repo("octo/ml", installation_id=1)
    emu.inject_fault("GET", ".", 503, delay=30)
    url = emu.url
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            requests.get(f"{url}/repos/octo/ml/pulls/1", timeout=10)
        except requests.RequestException as exc:  # the answer may be cut off by the stop
            errors.append(exc)

    client = threading.Thread(target=slow)
    client.start()
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    client.join(10)
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) == before


# -- data from git ---------------------------------------------------------------------------


def test_contents_come_from_git_base64_wrapped_every_60_characters(
    gh: Client, repo: EmulatedRepo
) -> None:
    data = ("lr: 0.3\n" + "# a long comment line to make the base64 wrap\n" * 3).encode()
    sha = repo.commit("feature", {"params.yaml": data}, "Tune")
    for ref in ("feature", sha):
        body = gh.get("/repos/octo/ml/contents/params.yaml", params={"ref": ref}).json()
        assert body["type"] == "file"
        assert body["encoding"] == "base64"
        assert body["sha"] == blob_sha(data)
        assert body["size"] == len(data)
        lines = body["content"].split("\n")
        assert lines[-1] == ""
        assert all(len(line) == 60 for line in lines[:-2])
        assert base64.b64decode(body["content"]) == data
    default = gh.get("/repos/octo/ml/contents/params.yaml").json()
    assert base64.b64decode(default["content"]) == b"lr: 0.1\n"
    raw = gh.get(
        "/repos/octo/ml/contents/params.yaml",
        params={"ref": "feature"},
        headers={"Accept": "application/vnd.github.raw+json"},
    )
    assert raw.content == data


def test_contents_of_missing_files_are_404_and_directories_list_entries(
    gh: Client, repo: EmulatedRepo
) -> None:
    assert gh.get("/repos/octo/ml/contents/metrics.json").status_code == 404
    assert gh.get("/repos/octo/ml/contents/params.yaml", params={"ref": "nope"}).status_code == 404
    listing = gh.get("/repos/octo/ml/contents/src").json()
    assert [(e["name"], e["type"], e["path"]) for e in listing] == [
        ("train.py", "file", "src/train.py")
    ]
    root = gh.get("/repos/octo/ml/contents/").json()
    assert {(e["name"], e["type"]) for e in root} == {("params.yaml", "file"), ("src", "dir")}


def test_files_over_one_megabyte_have_no_inline_content(gh: Client, repo: EmulatedRepo) -> None:
    big = b"0" * (1024 * 1024 + 1)
    repo.commit("main", {"model.bin": big}, "Add model")
    body = gh.get("/repos/octo/ml/contents/model.bin").json()
    assert (body["encoding"], body["content"], body["size"]) == ("none", "", len(big))
    raw = gh.get(
        "/repos/octo/ml/contents/model.bin", headers={"Accept": "application/vnd.github.raw"}
    )
    assert raw.content == big


def test_compare_reports_divergence_merge_base_commits_and_files(
    gh: Client, repo: EmulatedRepo
) -> None:
    fork_point = repo.head("main")
    repo.commit("feature", {"params.yaml": "lr: 0.2\n"}, "First", author="alice")
    head = repo.commit("feature", {"dvc.lock": "outs: []\n"}, "Second", author="alice")
    repo.commit("main", {"README.md": "# ml\n"}, "Docs on main")

    body = gh.get("/repos/octo/ml/compare/main...feature").json()
    assert body["status"] == "diverged"
    assert (body["ahead_by"], body["behind_by"], body["total_commits"]) == (2, 1, 2)
    assert body["merge_base_commit"]["sha"] == fork_point
    assert [c["commit"]["message"] for c in body["commits"]] == ["First", "Second"]
    assert body["commits"][-1]["sha"] == head
    assert body["commits"][0]["author"]["login"] == "alice"
    assert {f["filename"]: f["status"] for f in body["files"]} == {
        "params.yaml": "modified",
        "dvc.lock": "added",
    }
    assert gh.get("/repos/octo/ml/compare/feature...feature").json()["status"] == "identical"
    assert repo.create_branch("experiment", fork_point) == fork_point
    assert repo.head("experiment") == fork_point
    behind = gh.get("/repos/octo/ml/compare/main...experiment").json()
    assert (behind["status"], behind["behind_by"]) == ("behind", 1)
    assert gh.get(f"/repos/octo/ml/compare/{fork_point}...main").json()["status"] == "ahead"
    assert gh.get("/repos/octo/ml/compare/main...nope").status_code == 404


def test_pull_request_files_have_statuses_counts_and_patches(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    repo.commit("main", {"data/labels.csv": "a,b\n1,2\n3,4\n"}, "Add labels")
    repo.commit(
        "feature",
        {
            "params.yaml": "lr: 0.2\nepochs: 10\n",
            "src/train.py": None,
            "data/labels.csv": None,
            "data/targets.csv": "a,b\n1,2\n3,4\n",
            "model.bin": b"\x00\x01\x02\xff",
        },
        "Rework",
    )
    number = emu.open_pull_request("octo/ml", head="feature", base="main", user="alice")["number"]
    files = {f["filename"]: f for f in gh.get(f"/repos/octo/ml/pulls/{number}/files").json()}
    assert files["params.yaml"]["status"] == "modified"
    assert (files["params.yaml"]["additions"], files["params.yaml"]["deletions"]) == (2, 1)
    assert files["params.yaml"]["changes"] == 3
    assert files["params.yaml"]["patch"] == "@@ -1 +1,2 @@\n-lr: 0.1\n+lr: 0.2\n+epochs: 10"
    assert files["params.yaml"]["sha"] == blob_sha(b"lr: 0.2\nepochs: 10\n")
    assert files["src/train.py"]["status"] == "removed"
    assert files["data/targets.csv"]["status"] == "renamed"
    assert files["data/targets.csv"]["previous_filename"] == "data/labels.csv"
    assert files["model.bin"]["status"] == "added"
    assert "patch" not in files["model.bin"]


def test_pull_request_head_follows_new_commits_and_merge_really_merges(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    number = pr["number"]
    assert pr["head"]["sha"] == repo.head("feature")
    new_head = repo.commit("feature", {"metrics.json": '{"accuracy": 0.9}\n'}, "Metrics")
    body = gh.get(f"/repos/octo/ml/pulls/{number}").json()
    assert body["head"]["sha"] == new_head
    assert (body["state"], body["merged"], body["draft"]) == ("open", False, False)
    assert body["commits"] == 2
    assert body["head"]["repo"]["full_name"] == "octo/ml"
    assert body["head"]["repo"]["fork"] is False
    assert body["user"]["login"] == "alice"

    merge_sha = emu.close_pull_request("octo/ml", number, merged=True)
    assert merge_sha is not None
    assert repo.head("main") == merge_sha
    merged = gh.get(f"/repos/octo/ml/pulls/{number}").json()
    assert (merged["state"], merged["merged"], merged["merge_commit_sha"]) == (
        "closed",
        True,
        merge_sha,
    )
    metrics = gh.get("/repos/octo/ml/contents/metrics.json").json()
    assert base64.b64decode(metrics["content"]) == b'{"accuracy": 0.9}\n'
    parents = gh.get(f"/repos/octo/ml/compare/{new_head}...main").json()["commits"][0]["parents"]
    assert len(parents) == 2
    assert (repo.path / "metrics.json").read_text() == '{"accuracy": 0.9}\n'


def test_fork_pull_request_comes_from_a_second_repository(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    fork = emu.fork_repo("octo/ml", owner="mallory")
    head = fork.commit("feature", {"src/train.py": "import os\n"}, "Exfiltrate", author="mallory")
    pr = emu.open_pull_request(
        "octo/ml", head="feature", base="main", user="mallory", head_repo="mallory/ml"
    )
    body = gh.get(f"/repos/octo/ml/pulls/{pr['number']}").json()
    assert body["head"]["repo"]["full_name"] == "mallory/ml"
    assert body["head"]["repo"]["fork"] is True
    assert body["head"]["label"] == "mallory:feature"
    assert body["head"]["sha"] == head
    assert body["base"]["repo"]["full_name"] == "octo/ml"
    files = gh.get(f"/repos/octo/ml/pulls/{pr['number']}/files").json()
    assert [f["filename"] for f in files] == ["src/train.py"]

    newer = fork.commit("feature", {"params.yaml": "lr: 9\n"}, "More", author="mallory")
    assert gh.get(f"/repos/octo/ml/pulls/{pr['number']}").json()["head"]["sha"] == newer
    # The head commit is reachable in the base repository, as under refs/pull/N/head.
    run = gh.post("/repos/octo/ml/check-runs", {"name": "mlgate/quality", "head_sha": newer})
    assert run.status_code == 201
    assert run.json()["pull_requests"] == []  # GitHub leaves fork PRs out of check runs
    assert gh.get("/repos/mallory/ml/contents/params.yaml").status_code == 404


@pytest.mark.parametrize(
    ("role", "permission"),
    [
        ("admin", "admin"),
        ("maintain", "write"),
        ("write", "write"),
        ("triage", "read"),
        ("read", "read"),
        ("none", "none"),
    ],
)
def test_collaborator_permission_keeps_legacy_permission_and_role_name(
    emu: GitHubEmulator, gh: Client, role: str, permission: str
) -> None:
    emu.set_permission("octo/ml", "bob", role)
    body = gh.get("/repos/octo/ml/collaborators/bob/permission").json()
    assert (body["permission"], body["role_name"]) == (permission, role)
    assert body["user"]["login"] == "bob"


def test_collaborator_permission_of_owner_strangers_and_unknown_users(
    emu: GitHubEmulator, gh: Client
) -> None:
    emu.add_user("stranger")
    assert gh.get("/repos/octo/ml/collaborators/octo/permission").json()["role_name"] == "admin"
    assert gh.get("/repos/octo/ml/collaborators/stranger/permission").json()["permission"] == "none"
    assert gh.get("/repos/octo/ml/collaborators/ghost/permission").status_code == 404
    first, again = emu.add_user("carol"), emu.add_user("carol")
    assert first["id"] == again["id"]
    assert emu.add_user("dependabot[bot]", type="Bot")["type"] == "Bot"


# -- what the bot writes ---------------------------------------------------------------------


def test_bot_comments_belong_to_the_app_and_are_edited_in_place(
    emu: GitHubEmulator, gh: Client, pr: dict[str, Any]
) -> None:
    created = gh.post(f"/repos/octo/ml/issues/{pr['number']}/comments", {"body": "report v1"})
    assert created.status_code == 201
    comment = created.json()
    assert comment["user"]["login"] == "mlgate[bot]"
    assert comment["user"]["type"] == "Bot"
    assert comment["issue_url"].endswith(f"/repos/octo/ml/issues/{pr['number']}")
    assert comment["html_url"].endswith(f"#issuecomment-{comment['id']}")
    edited = gh.patch(f"/repos/octo/ml/issues/comments/{comment['id']}", {"body": "report v2"})
    assert edited.status_code == 200
    assert edited.json()["id"] == comment["id"]
    assert [c["body"] for c in emu.comments("octo/ml", pr["number"])] == ["report v2"]
    assert gh.post("/repos/octo/ml/issues/999/comments", {"body": "x"}).status_code == 404
    assert gh.patch("/repos/octo/ml/issues/comments/999999", {"body": "x"}).status_code == 404


def test_reaction_is_created_once_then_answered_200(
    emu: GitHubEmulator, gh: Client, pr: dict[str, Any]
) -> None:
    comment = emu.add_comment("octo/ml", pr["number"], "/retrain", user="alice")
    assert comment["user"]["login"] == "alice"
    path = f"/repos/octo/ml/issues/comments/{comment['id']}/reactions"
    first = gh.post(path, {"content": "eyes"})
    again = gh.post(path, {"content": "eyes"})
    rocket = gh.post(path, {"content": "rocket"})
    assert (first.status_code, again.status_code, rocket.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert [r["content"] for r in emu.reactions(comment["id"])] == ["eyes", "rocket"]
    assert emu.comments("octo/ml", pr["number"])[0]["reactions"]["eyes"] == 1


def test_check_run_lifecycle_and_listing_by_ref(
    emu: GitHubEmulator, gh: Client, pr: dict[str, Any]
) -> None:
    sha = pr["head"]["sha"]
    created = gh.post(
        "/repos/octo/ml/check-runs",
        {"name": "mlgate/quality", "head_sha": sha, "status": "in_progress", "external_id": "r1"},
    ).json()
    assert (created["status"], created["conclusion"], created["completed_at"]) == (
        "in_progress",
        None,
        None,
    )
    assert created["pull_requests"][0]["number"] == pr["number"]
    done = gh.patch(
        f"/repos/octo/ml/check-runs/{created['id']}",
        {"conclusion": "success", "output": {"title": "Passed", "summary": "| metric |"}},
    ).json()
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    assert done["completed_at"] is not None
    assert done["output"]["summary"] == "| metric |"
    gh.post("/repos/octo/ml/check-runs", {"name": "mlgate/deploy", "head_sha": sha})
    gh.post("/repos/octo/ml/check-runs", {"name": "mlgate/config", "head_sha": sha})

    listed = gh.get("/repos/octo/ml/commits/feature/check-runs").json()
    assert listed["total_count"] == 3
    named = gh.get(
        f"/repos/octo/ml/commits/{sha}/check-runs", params={"check_name": "mlgate/quality"}
    ).json()
    assert [r["id"] for r in named["check_runs"]] == [created["id"]]
    page = gh.get(f"/repos/octo/ml/commits/{sha}/check-runs", params={"per_page": 2})
    assert len(page.json()["check_runs"]) == 2
    assert page.json()["total_count"] == 3
    assert "next" in links(page)
    assert [r["name"] for r in emu.check_runs("octo/ml", sha)] == [
        "mlgate/quality",
        "mlgate/deploy",
        "mlgate/config",
    ]
    unknown = gh.post("/repos/octo/ml/check-runs", {"name": "q", "head_sha": "0" * 40})
    assert unknown.status_code == 422


def test_commit_statuses_and_deployments_with_statuses(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    sha = repo.head("main")
    assert gh.post(f"/repos/octo/ml/statuses/{sha}", {"state": "failure", "context": "ci"}).ok
    blocked = gh.post("/repos/octo/ml/deployments", {"ref": "main"})
    assert blocked.status_code == 409  # every status context must be green by default
    deployment = gh.post(
        "/repos/octo/ml/deployments",
        {"ref": "main", "required_contexts": [], "payload": '{"model": "xgb"}'},
    )
    assert deployment.status_code == 201
    created = deployment.json()
    assert (created["sha"], created["environment"], created["payload"]) == (
        sha,
        "production",
        {"model": "xgb"},
    )
    status = gh.post(
        f"/repos/octo/ml/deployments/{created['id']}/statuses",
        {"state": "success", "log_url": "https://ci.example/1"},
    )
    assert status.status_code == 201
    assert status.json()["target_url"] == "https://ci.example/1"
    assert [s["state"] for s in emu.deployment_statuses(created["id"])] == ["success"]
    assert [d["id"] for d in emu.deployments("octo/ml")] == [created["id"]]
    assert [s["context"] for s in emu.statuses("octo/ml", sha)] == ["ci"]
    assert gh.post("/repos/octo/ml/deployments", {"ref": "nope"}).status_code == 422
    assert (
        gh.post("/repos/octo/ml/deployments/999/statuses", {"state": "success"}).status_code == 404
    )


def test_deploying_a_branch_behind_the_default_branch_auto_merges_with_202(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    repo.commit("feature", {"params.yaml": "lr: 0.2\n"})
    repo.commit("main", {"README.md": "# newer\n"})
    response = gh.post("/repos/octo/ml/deployments", {"ref": "feature"})
    assert response.status_code == 202
    assert response.json()["message"] == "Auto-merged main into feature on deployment."
    assert emu.deployments("octo/ml") == []
    assert gh.post("/repos/octo/ml/deployments", {"ref": "feature"}).status_code == 201


# -- webhooks --------------------------------------------------------------------------------


def test_webhook_is_signed_and_carries_githubs_headers(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    payload = {"action": "opened", "installation": {"id": 42}, "repository": {"id": repo.id}}
    with Receiver() as receiver:
        emu.configure_webhook(receiver.url, "s3cret")
        assert emu.send_webhook("pull_request", payload, guid="guid-1") == 202
    headers, body = receiver.received[0]
    assert json.loads(body) == payload
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    assert headers["X-Github-Event"] == "pull_request"
    assert headers["X-Github-Delivery"] == "guid-1"
    assert headers["X-Github-Hook-Installation-Target-Type"] == "integration"
    assert headers["X-Github-Hook-Installation-Target-Id"] == "1"
    assert headers["X-Github-Hook-Id"]
    assert headers["User-Agent"] == "GitHub-Hookshot/emulator"
    assert headers["Content-Type"] == "application/json"
    delivery = emu.deliveries[0]
    assert delivery["guid"] == "guid-1"
    assert (delivery["event"], delivery["action"]) == ("pull_request", "opened")
    assert (delivery["installation_id"], delivery["repository_id"]) == (42, repo.id)
    assert (delivery["status"], delivery["status_code"], delivery["redelivery"]) == (
        "OK",
        202,
        False,
    )


def test_failed_delivery_is_listed_and_redelivered_with_the_same_guid(
    emu: GitHubEmulator,
) -> None:
    jwt_header = {"Authorization": f"Bearer {app_jwt(emu)}"}
    with Receiver(statuses=[503]) as receiver:
        emu.configure_webhook(receiver.url, "s3cret")
        assert emu.send_webhook("issue_comment", {"action": "created"}) == 503
        listed = requests.get(f"{emu.url}/app/hook/deliveries", headers=jwt_header, timeout=5)
        failed = listed.json()[0]
        assert (failed["status"], failed["status_code"]) == ("Invalid HTTP Response: 503", 503)

        redo = requests.post(
            f"{emu.url}/app/hook/deliveries/{failed['id']}/attempts", headers=jwt_header, timeout=5
        )
        assert (redo.status_code, redo.json()) == (202, {})
    assert len(receiver.received) == 2
    first, second = (headers for headers, _ in receiver.received)
    assert second["X-Github-Delivery"] == first["X-Github-Delivery"]
    assert receiver.received[0][1] == receiver.received[1][1]
    newest = emu.deliveries[0]
    assert (newest["guid"], newest["redelivery"], newest["status"]) == (
        failed["guid"],
        True,
        "OK",
    )
    failures = requests.get(
        f"{emu.url}/app/hook/deliveries",
        headers=jwt_header,
        params={"status": "failure"},
        timeout=5,
    ).json()
    assert [d["id"] for d in failures] == [failed["id"]]
    missing = requests.post(
        f"{emu.url}/app/hook/deliveries/12345/attempts", headers=jwt_header, timeout=5
    )
    assert missing.status_code == 404


def test_deliveries_page_with_a_cursor_newest_first(emu: GitHubEmulator) -> None:
    jwt_header = {"Authorization": f"Bearer {app_jwt(emu)}"}
    with Receiver() as receiver:
        emu.configure_webhook(receiver.url, "s3cret")
        for i in range(5):
            emu.send_webhook("ping", {"zen": str(i)}, guid=f"g{i}")
    first = requests.get(
        f"{emu.url}/app/hook/deliveries", headers=jwt_header, params={"per_page": 2}, timeout=5
    )
    assert [d["guid"] for d in first.json()] == ["g4", "g3"]
    next_url = links(first)["next"]
    assert next_url.startswith(f"{emu.url}/app/hook/deliveries?")
    assert "cursor=" in next_url
    seen = [d["guid"] for d in first.json()]
    while next_url:
        page = requests.get(next_url, headers=jwt_header, timeout=5)
        seen += [d["guid"] for d in page.json()]
        next_url = links(page).get("next", "") if "Link" in page.headers else ""
    assert seen == ["g4", "g3", "g2", "g1", "g0"]


def test_delivery_to_a_closed_port_is_status_0(emu: GitHubEmulator) -> None:
    with Receiver() as receiver:
        url = receiver.url
    emu.configure_webhook(url, "s3cret")
    assert emu.send_webhook("ping", {"zen": "x"}) == 0
    assert emu.deliveries[0]["status_code"] == 0
    assert emu.deliveries[0]["status"] != "OK"


# -- the loopback server and the package's imports -------------------------------------------


def test_loopback_server_serves_any_wsgi_app_and_its_stop_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    with Receiver(statuses=[503]) as receiver:
        assert receiver.base_url.startswith("http://127.0.0.1:")
        first = requests.post(receiver.url, data=b"one", timeout=5)
        second = requests.post(receiver.url, data=b"two", timeout=5)
    assert (first.status_code, second.status_code) == (503, 202)
    assert [body for _, body in receiver.received] == [b"one", b"two"]
    assert set(threading.enumerate()) == before


def test_loopback_server_refuses_a_url_before_start_and_a_second_start() -> None:
    receiver = Receiver()
    with pytest.raises(LoopbackError, match="webhook-receiver is not running"):
        _ = receiver.base_url
    with receiver, pytest.raises(LoopbackError, match="webhook-receiver is already running"):
        receiver.start()
    with pytest.raises(LoopbackError, match="not running"):
        _ = receiver.base_url


def _emulator_imports() -> dict[str, set[str]]:
    # Every import counts, also those under TYPE_CHECKING or inside a function: the circle
    # this guards against was made of exactly those.
    package = Path(bot.emulator.__file__).parent
    names = {f"bot.emulator.{path.stem}" for path in package.glob("*.py")} | {"bot.emulator"}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        module = "bot.emulator" if path.stem == "__init__" else f"bot.emulator.{path.stem}"
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in names:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    graph[module].add(child if child in names else node.module)
            elif isinstance(node, ast.Import):
                graph[module] |= {alias.name for alias in node.names if alias.name in names}
    return graph


def test_emulator_modules_import_each_other_in_one_direction_only() -> None:
    graph = _emulator_imports()
    assert "bot.emulator.github_state" in graph["bot.emulator.github_routes"]

    def circle(module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if module in path:
            return (*path[path.index(module) :], module)
        for imported in sorted(graph.get(module, ())):
            found = circle(imported, (*path, module))
            if found is not None:
                return found
        return None

    assert [circle(module, ()) for module in sorted(graph)] == [None] * len(graph)


# -- Git Data API ----------------------------------------------------------------------------


def test_git_data_api_builds_a_commit_that_contents_and_compare_read_back(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    gh = Client(emu, writer_token(emu))
    main = repo.head("main")
    text = gh.post("/repos/octo/ml/git/blobs", {"content": "a,b\n1,2\n"})
    assert text.status_code == 201
    assert text.json()["sha"] == blob_sha(b"a,b\n1,2\n")
    binary = gh.post(
        "/repos/octo/ml/git/blobs",
        {"content": base64.encodebytes(b"\x00\xff" * 40).decode(), "encoding": "base64"},
    )
    assert binary.json()["sha"] == blob_sha(b"\x00\xff" * 40)
    base_tree = gh.get(f"/repos/octo/ml/compare/{main}...{main}").json()["base_commit"]
    src_tree = repo.git.git("rev-parse", "main:src").decode().strip()
    tree = gh.post(
        "/repos/octo/ml/git/trees",
        {
            "base_tree": base_tree["commit"]["tree"]["sha"],
            "tree": [
                {
                    "path": "data/new.csv",
                    "mode": "100644",
                    "type": "blob",
                    "sha": text.json()["sha"],
                },
                {
                    "path": "model.bin",
                    "mode": "100644",
                    "type": "blob",
                    "sha": binary.json()["sha"],
                },
                {"path": "src", "mode": "040000", "type": "tree", "sha": None},
                {"path": "old/src", "mode": "040000", "type": "tree", "sha": src_tree},
                {"path": "params.yaml/x", "mode": "100644", "type": "blob", "content": "no"},
                {"path": "params.yaml", "mode": "100644", "type": "blob", "content": "lr: 0.3\n"},
            ],
        },
    )
    assert tree.status_code == 201, tree.text
    top = {e["path"]: e for e in tree.json()["tree"]}
    assert set(top) == {"data", "model.bin", "old", "params.yaml"}  # src/ went
    assert (top["data"]["type"], top["data"]["mode"]) == ("tree", "040000")
    assert top["params.yaml"]["sha"] == blob_sha(b"lr: 0.3\n")
    assert top["model.bin"]["size"] == 80
    assert tree.json()["truncated"] is False

    author = {"name": "Ada", "email": "ada@example.com", "date": "2024-03-01T12:00:00+02:00"}
    commit = gh.post(
        "/repos/octo/ml/git/commits",
        {"message": "New data", "tree": tree.json()["sha"], "parents": [main], "author": author},
    )
    assert commit.status_code == 201, commit.text
    made = commit.json()
    assert made["author"] == {
        "name": "Ada",
        "email": "ada@example.com",
        "date": "2024-03-01T10:00:00Z",
    }
    # "By default, committer will use the information set in author."
    assert made["committer"] == made["author"]
    assert [p["sha"] for p in made["parents"]] == [main]
    assert made["tree"]["sha"] == tree.json()["sha"]
    assert made["message"] == "New data"
    assert made["verification"]["verified"] is False

    ref = gh.post("/repos/octo/ml/git/refs", {"ref": "refs/heads/retrain", "sha": made["sha"]})
    assert ref.status_code == 201
    assert ref.json()["ref"] == "refs/heads/retrain"
    assert ref.json()["object"] == {
        "type": "commit",
        "sha": made["sha"],
        "url": f"{emu.url}/repos/octo/ml/git/commits/{made['sha']}",
    }
    assert repo.head("retrain") == made["sha"]
    new = gh.get("/repos/octo/ml/contents/data/new.csv?ref=retrain").json()
    assert base64.b64decode(new["content"]) == b"a,b\n1,2\n"
    assert gh.get("/repos/octo/ml/contents/src/train.py?ref=retrain").status_code == 404
    moved = gh.get("/repos/octo/ml/contents/old/src/train.py?ref=retrain").json()
    assert base64.b64decode(moved["content"]) == b"print('train')\n"
    compared = gh.get("/repos/octo/ml/compare/main...retrain").json()
    assert (compared["status"], compared["ahead_by"]) == ("ahead", 1)
    assert {f["filename"]: f["status"] for f in compared["files"]} == {
        "data/new.csv": "added",
        "model.bin": "added",
        "params.yaml": "modified",
        "old/src/train.py": "renamed",
    }


def test_update_ref_fast_forwards_and_refuses_a_rewind_without_force(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    gh = Client(emu, writer_token(emu))
    first = repo.head("main")
    second = repo.commit("main", {"params.yaml": "lr: 0.5\n"}, "Tune")
    side = repo.commit("side", {"README.md": "# side\n"}, "Side")  # from main's head
    assert gh.post("/repos/octo/ml/git/refs", {"ref": "refs/heads/x", "sha": first}).ok

    forward = gh.patch("/repos/octo/ml/git/refs/heads/x", {"sha": second})
    assert forward.status_code == 200
    assert forward.json()["object"]["sha"] == second
    back = gh.patch("/repos/octo/ml/git/refs/heads/x", {"sha": first})
    assert back.status_code == 422
    assert back.json()["message"] == "Update is not a fast forward"
    explicit = gh.patch("/repos/octo/ml/git/refs/heads/x", {"sha": first, "force": False})
    assert explicit.status_code == 422
    assert repo.head("x") == second
    forced = gh.patch("/repos/octo/ml/git/refs/heads/x", {"sha": first, "force": True})
    assert forced.status_code == 200
    assert gh.get("/repos/octo/ml/git/ref/heads/x").json()["object"]["sha"] == first

    # Moving the default branch moves what the contents API and the work tree show.
    assert gh.patch("/repos/octo/ml/git/refs/heads/main", {"sha": side}).status_code == 200
    readme = gh.get("/repos/octo/ml/contents/README.md").json()
    assert base64.b64decode(readme["content"]) == b"# side\n"
    assert (repo.path / "README.md").read_text() == "# side\n"

    missing = gh.patch("/repos/octo/ml/git/refs/heads/nope", {"sha": first})
    assert (missing.status_code, missing.json()["message"]) == (422, "Reference does not exist")
    assert gh.get("/repos/octo/ml/git/ref/heads/nope").status_code == 404
    unknown = gh.patch("/repos/octo/ml/git/refs/heads/x", {"sha": "1" * 40, "force": True})
    assert (unknown.status_code, unknown.json()["message"]) == (422, "Object does not exist")


@pytest.mark.parametrize(
    ("ref", "sha", "message"),
    [
        ("refs/heads/main", None, "Reference already exists"),
        ("refs/heads/new", "2" * 40, "Object does not exist"),
        ("refs/main", None, "Validation Failed"),
        ("heads/new", None, "Validation Failed"),
        ("refs/heads/bad..name", None, "Validation Failed"),
    ],
)
def test_create_ref_refuses_taken_names_missing_objects_and_bad_names(
    emu: GitHubEmulator, repo: EmulatedRepo, ref: str, sha: str | None, message: str
) -> None:
    gh = Client(emu, writer_token(emu))
    response = gh.post("/repos/octo/ml/git/refs", {"ref": ref, "sha": sha or repo.head("main")})
    assert response.status_code == 422
    assert response.json()["message"] == message
    assert repo.git.branches() == ["main"]


def test_a_pull_requests_head_follows_its_branch_moved_through_git_data(
    emu: GitHubEmulator, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    gh = Client(emu, writer_token(emu))
    old_head = pr["head"]["sha"]
    tree = gh.post(
        "/repos/octo/ml/git/trees",
        {
            "base_tree": repo.git.git("rev-parse", f"{old_head}^{{tree}}").decode().strip(),
            "tree": [{"path": "metrics.json", "mode": "100644", "type": "blob", "content": "{}\n"}],
        },
    ).json()
    commit = gh.post(
        "/repos/octo/ml/git/commits", {"message": "m", "tree": tree["sha"], "parents": [old_head]}
    ).json()
    assert gh.patch("/repos/octo/ml/git/refs/heads/feature", {"sha": commit["sha"]}).ok
    body = gh.get(f"/repos/octo/ml/pulls/{pr['number']}").json()
    assert body["head"]["sha"] == commit["sha"]
    assert body["commits"] == 2
    files = gh.get(f"/repos/octo/ml/pulls/{pr['number']}/files").json()
    assert sorted(f["filename"] for f in files) == ["metrics.json", "params.yaml"]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"path": "a", "mode": "100644", "type": "blob", "sha": "SHA", "content": "x"}, "content"),
        ({"path": "a", "mode": "040000", "type": "blob", "sha": "SHA"}, "mode"),
        ({"path": "a", "mode": "100644", "type": "blob", "sha": "3" * 40}, "sha"),
        ({"path": "a", "mode": "100644", "type": "blob"}, "sha"),
        ({"path": "a", "mode": "040000", "type": "tree", "sha": "SHA"}, "sha"),
    ],
)
def test_tree_entries_are_checked_like_github(
    emu: GitHubEmulator, repo: EmulatedRepo, entry: dict[str, Any], field: str
) -> None:
    gh = Client(emu, writer_token(emu))
    blob = gh.post("/repos/octo/ml/git/blobs", {"content": "x"}).json()["sha"]
    if entry.get("sha") == "SHA":
        entry = {**entry, "sha": blob}
    response = gh.post("/repos/octo/ml/git/trees", {"tree": [entry]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"tree[0].{field}"
    commit = gh.post("/repos/octo/ml/git/commits", {"message": "m", "tree": blob, "parents": []})
    assert (commit.status_code, commit.json()["message"]) == (422, "Tree SHA does not exist")


def test_commits_need_existing_parents_and_default_to_the_apps_bot(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    gh = Client(emu, writer_token(emu))
    main = repo.head("main")
    tree = repo.git.git("rev-parse", "main^{tree}").decode().strip()
    for parents in ([tree], ["4" * 40]):
        refused = gh.post(
            "/repos/octo/ml/git/commits", {"message": "m", "tree": tree, "parents": parents}
        )
        assert refused.status_code == 422
        assert refused.json()["message"] == "Parent SHA does not exist or is not a commit object"
    made = gh.post(
        "/repos/octo/ml/git/commits",
        {
            "message": "Retrain",
            "tree": tree,
            "parents": [main],
            "committer": {"name": "CI", "email": "ci@example.com"},
        },
    ).json()
    bot = emu.user_json("mlgate[bot]")
    assert made["author"]["name"] == "mlgate[bot]"
    assert made["author"]["email"] == f"{bot['id']}+mlgate[bot]@users.noreply.github.com"
    assert made["committer"]["email"] == "ci@example.com"
    root = gh.post("/repos/octo/ml/git/commits", {"message": "root", "tree": tree}).json()
    assert root["parents"] == []


def test_git_data_writes_need_contents_write(gh: Client, repo: EmulatedRepo) -> None:
    refused = gh.post("/repos/octo/ml/git/blobs", {"content": "x"})
    assert (refused.status_code, refused.json()["message"]) == (
        403,
        "Resource not accessible by integration",
    )
    assert gh.get("/repos/octo/ml/git/ref/heads/main").status_code == 200
    moved = gh.patch("/repos/octo/ml/git/refs/heads/main", {"sha": repo.head("main")})
    assert moved.status_code == 403


# -- pull requests and issues through the API -------------------------------------------------


def test_pull_request_opened_through_the_api_is_like_the_helpers(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    head = repo.commit("feature", {"params.yaml": "lr: 0.2\n"}, "Tune", author="alice")
    opened = gh.post(
        "/repos/octo/ml/pulls",
        {"title": "Tune", "head": "feature", "base": "main", "body": "Why", "draft": True},
    )
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert opened.headers["Location"] == body["url"]
    assert (body["number"], body["state"], body["draft"]) == (1, "open", True)
    assert (body["title"], body["body"]) == ("Tune", "Why")
    assert body["user"]["login"] == "mlgate[bot]"
    assert body["head"]["sha"] == head
    assert (body["commits"], body["changed_files"], body["mergeable"]) == (1, 1, True)
    assert gh.get("/repos/octo/ml/pulls/1").json() == emu.pull_request("octo/ml", 1)
    files = gh.get("/repos/octo/ml/pulls/1/files").json()
    assert [(f["filename"], f["status"]) for f in files] == [("params.yaml", "modified")]
    newer = repo.commit("feature", {"metrics.json": "{}\n"}, "More", author="alice")
    assert gh.get("/repos/octo/ml/pulls/1").json()["head"]["sha"] == newer
    # The same head into another base is another PR; into the same base it is refused.
    repo.create_branch("release", repo.head("main"))
    assert (
        gh.post(
            "/repos/octo/ml/pulls", {"title": "t", "head": "feature", "base": "release"}
        ).status_code
        == 201
    )
    again = gh.post("/repos/octo/ml/pulls", {"title": "t", "head": "octo:feature", "base": "main"})
    assert again.status_code == 422
    assert again.json()["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for octo:feature.",
        }
    ]
    emu.close_pull_request("octo/ml", 1)
    reopened = gh.post("/repos/octo/ml/pulls", {"title": "t", "head": "feature", "base": "main"})
    assert reopened.status_code == 201
    assert reopened.json()["number"] == 3


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"head": "main"}, None, "No commits between main and main"),
        ({"base": "nope"}, "base", None),
        ({"head": "nope"}, "head", None),
        ({"head": "mallory:feature"}, "head", None),
        ({"title": ""}, "title", None),
    ],
)
def test_pull_requests_github_refuses(
    gh: Client, repo: EmulatedRepo, change: dict[str, str], field: str | None, message: str | None
) -> None:
    repo.commit("feature", {"params.yaml": "lr: 0.2\n"}, "Tune")
    response = gh.post(
        "/repos/octo/ml/pulls", {"title": "t", "head": "feature", "base": "main", **change}
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error.get("field") == field
    if message is not None:
        assert error["message"] == message
    assert gh.get("/repos/octo/ml/pulls?state=all").json() == []


def test_a_fork_pull_request_can_be_opened_with_owner_colon_branch(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    fork = emu.fork_repo("octo/ml", owner="mallory")
    head = fork.commit("patch", {"src/train.py": "import os\n"}, "Patch", author="mallory")
    opened = gh.post(
        "/repos/octo/ml/pulls", {"title": "t", "head": "mallory:patch", "base": "main"}
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["head"]["repo"]["full_name"] == "mallory/ml"
    assert opened.json()["head"]["sha"] == head
    commits = gh.get(f"/repos/octo/ml/pulls/{opened.json()['number']}/commits").json()
    assert [c["sha"] for c in commits] == [head]
    assert commits[0]["author"]["login"] == "mallory"


def test_a_conflicting_pull_request_is_not_mergeable(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    repo.commit("feature", {"params.yaml": "lr: 0.2\n"}, "Feature")
    clean = emu.open_pull_request("octo/ml", head="feature", base="main", user="alice")
    assert (clean["mergeable"], clean["mergeable_state"]) == (True, "clean")
    repo.commit("main", {"params.yaml": "lr: 0.3\n"}, "Main")
    body = gh.get(f"/repos/octo/ml/pulls/{clean['number']}").json()
    assert (body["mergeable"], body["rebaseable"], body["mergeable_state"]) == (
        False,
        False,
        "dirty",
    )


def test_pull_requests_list_by_state_head_and_base_newest_first_in_pages(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    for branch in ("a", "b", "c"):
        repo.commit(branch, {f"{branch}.txt": branch}, branch)
        emu.open_pull_request("octo/ml", head=branch, base="main", user="alice")
    emu.close_pull_request("octo/ml", 2)

    def numbers(query: str) -> list[int]:
        return [p["number"] for p in gh.get(f"/repos/octo/ml/pulls{query}").json()]

    assert numbers("") == [3, 1]
    assert numbers("?state=closed") == [2]
    assert numbers("?state=all&direction=asc") == [1, 2, 3]
    assert numbers("?head=octo:c") == [3]
    assert numbers("?head=alice:c") == []
    # "in the format of user:ref-name": a bare branch name filters nothing.
    assert numbers("?head=c") == [3, 1]
    assert numbers("?base=other") == []
    assert gh.get("/repos/octo/ml/pulls?state=shut").status_code == 422
    first = gh.get("/repos/octo/ml/pulls?state=all&per_page=2")
    assert [p["number"] for p in first.json()] == [3, 2]
    assert "mergeable" not in first.json()[0]  # a list shows the simple pull request
    assert links(first)["next"].endswith("page=2")
    assert [p["number"] for p in gh.get(links(first)["next"]).json()] == [1]


def test_pull_request_commits_show_authors_and_committers_as_github_does(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    gh = Client(emu, writer_token(emu))
    emu.add_user("ada", email="ada@example.com")
    repo.commit("feature", {"a.txt": "a"}, "By alice", author="alice")
    tree = repo.git.git("rev-parse", "feature^{tree}").decode().strip()
    ada = gh.post(
        "/repos/octo/ml/git/commits",
        {
            "message": "By ada, committed by a stranger",
            "tree": tree,
            "parents": [repo.head("feature")],
            "author": {"name": "Ada L.", "email": "ADA@example.com"},
            "committer": {"name": "Stranger", "email": "nobody@example.org"},
        },
    ).json()
    assert gh.patch("/repos/octo/ml/git/refs/heads/feature", {"sha": ada["sha"]}).ok
    number = emu.open_pull_request("octo/ml", head="feature", base="main", user="alice")["number"]
    commits = gh.get(f"/repos/octo/ml/pulls/{number}/commits").json()
    assert [c["commit"]["message"] for c in commits] == [
        "By alice",
        "By ada, committed by a stranger",
    ]
    assert commits[0]["author"]["login"] == commits[0]["committer"]["login"] == "alice"
    assert commits[1]["commit"]["author"]["name"] == "Ada L."
    assert commits[1]["author"]["login"] == "ada"  # a verified address links the account
    assert commits[1]["committer"] is None  # an address no account has
    assert commits[1]["commit"]["committer"]["email"] == "nobody@example.org"


def test_pull_request_commits_stop_at_250(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo
) -> None:
    # One fast-import stream: 251 commits on `long`, each changing one file.
    parent = repo.head("main")
    stream = []
    for i in range(251):
        stream.append(
            f"commit refs/heads/long\ncommitter a <a@example.com> {1700000000 + i} +0000\n"
            f"data {len(str(i))}\n{i}\n"
            + (f"from {parent}\n" if i == 0 else "")
            + f"M 100644 inline n.txt\ndata {len(str(i))}\n{i}\n\n"
        )
    repo.git.git("fast-import", "--quiet", stdin="".join(stream).encode())
    number = emu.open_pull_request("octo/ml", head="long", base="main", user="alice")["number"]
    pages = [
        gh.get(f"/repos/octo/ml/pulls/{number}/commits?per_page=100&page={n}") for n in (1, 2, 3)
    ]
    messages = [c["commit"]["message"] for page in pages for c in page.json()]
    assert messages == [str(i) for i in range(250)]
    assert "next" not in links(pages[2])


def test_issues_are_opened_edited_closed_and_labelled(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    opened = gh.post(
        "/repos/octo/ml/issues",
        {"title": "accuracy below 0.9", "body": "table", "labels": ["mlgate:monitor", "BUG"]},
    )
    assert opened.status_code == 201, opened.text
    issue = opened.json()
    assert issue["number"] == pr["number"] + 1  # one numbering for issues and PRs
    assert issue["user"]["login"] == "mlgate[bot]"
    assert issue["performed_via_github_app"]["slug"] == "mlgate"
    assert "pull_request" not in issue
    labels = {label["name"]: label for label in issue["labels"]}
    assert set(labels) == {"mlgate:monitor", "bug"}  # "BUG" is the default label "bug"
    assert (labels["bug"]["color"], labels["bug"]["default"]) == ("d73a4a", True)
    assert (labels["mlgate:monitor"]["color"], labels["mlgate:monitor"]["default"]) == (
        "ededed",
        False,
    )
    number = issue["number"]
    comment = gh.post(f"/repos/octo/ml/issues/{number}/comments", {"body": "still low"})
    assert comment.status_code == 201
    added = gh.post(f"/repos/octo/ml/issues/{number}/labels", {"labels": ["mlgate:monitor", "x"]})
    assert [label["name"] for label in added.json()] == ["mlgate:monitor", "bug", "x"]

    closed = gh.patch(f"/repos/octo/ml/issues/{number}", {"state": "closed", "title": "fixed"})
    assert closed.status_code == 200
    body = closed.json()
    assert (body["state"], body["state_reason"], body["title"]) == ("closed", "completed", "fixed")
    assert body["closed_by"]["login"] == "mlgate[bot]"
    assert body["closed_at"] is not None
    assert body["comments"] == 1
    replaced = gh.patch(f"/repos/octo/ml/issues/{number}", {"labels": [], "state": "open"}).json()
    assert (replaced["labels"], replaced["state"], replaced["state_reason"]) == (
        [],
        "open",
        "reopened",
    )
    assert emu.issue("octo/ml", number)["closed_at"] is None
    assert gh.patch("/repos/octo/ml/issues/99", {"state": "closed"}).status_code == 404
    assert gh.post("/repos/octo/ml/issues", {"body": "no title"}).status_code == 422


def test_issues_list_by_state_and_labels_with_pull_requests_among_them(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    emu.create_issue("octo/ml", "one", "alice", labels=["a", "b"])
    emu.create_issue("octo/ml", "two", "bob", labels=["a"])
    three = emu.create_issue("octo/ml", "three", "alice")
    gh.patch(f"/repos/octo/ml/issues/{three['number']}", {"state": "closed"})

    def titles(query: str) -> list[str]:
        return [i["title"] for i in gh.get(f"/repos/octo/ml/issues{query}").json()]

    assert titles("") == ["two", "one", pr["title"]]
    listed = gh.get("/repos/octo/ml/issues").json()
    assert listed[-1]["pull_request"]["url"] == pr["url"]
    assert titles("?labels=a") == ["two", "one"]
    assert titles("?labels=A,b") == ["one"]  # every label named, in any case
    assert titles("?state=closed") == ["three"]
    assert titles("?state=all&creator=alice&direction=asc") == [pr["title"], "one", "three"]
    page = gh.get("/repos/octo/ml/issues?per_page=1&page=2")
    assert [i["title"] for i in page.json()] == ["one"]
    assert set(links(page)) == {"prev", "next", "last", "first"}


def test_a_pull_request_is_closed_and_reopened_through_the_issues_api(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    number = pr["number"]
    labelled = gh.post(f"/repos/octo/ml/issues/{number}/labels", {"labels": ["mlgate:retrain"]})
    assert labelled.status_code == 200
    assert [
        label["name"] for label in gh.get(f"/repos/octo/ml/pulls/{number}").json()["labels"]
    ] == ["mlgate:retrain"]
    closed = gh.patch(f"/repos/octo/ml/issues/{number}", {"state": "closed"}).json()
    assert closed["pull_request"]["merged_at"] is None
    pull = gh.get(f"/repos/octo/ml/pulls/{number}").json()
    assert (pull["state"], pull["merged"]) == ("closed", False)
    assert gh.patch(f"/repos/octo/ml/issues/{number}", {"state": "open"}).json()["state"] == "open"
    emu.close_pull_request("octo/ml", number, merged=True)
    refused = gh.patch(f"/repos/octo/ml/issues/{number}", {"state": "open"})
    assert refused.status_code == 422
    assert gh.get(f"/repos/octo/ml/pulls/{number}").json()["state"] == "closed"


def test_a_token_with_pull_requests_but_not_issues_labels_only_pull_requests(
    emu: GitHubEmulator, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    issue = emu.create_issue("octo/ml", "drift", "alice")
    gh = Client(emu, new_token(emu, permissions={"pull_requests": "write", "metadata": "read"}))
    assert gh.post(f"/repos/octo/ml/issues/{pr['number']}/labels", {"labels": ["x"]}).ok
    refused = gh.post(f"/repos/octo/ml/issues/{issue['number']}/labels", {"labels": ["x"]})
    assert refused.status_code == 403
    assert gh.post("/repos/octo/ml/issues", {"title": "t"}).status_code == 403
    assert emu.issue("octo/ml", issue["number"])["labels"] == []


# -- GitHub's web side: the OAuth web flow and the App-manifest flow ---------------------------


def _authorize(emu: GitHubEmulator, **params: str) -> requests.Response:
    query = {"client_id": emu.github_app.client_id, "state": "xyz", **params}
    return requests.get(
        f"{emu.url}/login/oauth/authorize", params=query, allow_redirects=False, timeout=5
    )


def _exchange(emu: GitHubEmulator, json_answer: bool = True, **params: str) -> requests.Response:
    form = {
        "client_id": emu.github_app.client_id,
        "client_secret": emu.github_app.client_secret,
        **params,
    }
    headers = {"Accept": "application/json"} if json_answer else {}
    return requests.post(
        f"{emu.url}/login/oauth/access_token", data=form, headers=headers, timeout=5
    )


def test_oauth_web_flow_signs_in_the_signed_in_user_with_a_user_token(
    emu: GitHubEmulator,
) -> None:
    emu.github_app.callback_urls.append(CALLBACK)
    emu.add_user("alice", email="alice@example.com", name="Alice")
    unsigned = _authorize(emu, redirect_uri=CALLBACK)
    assert unsigned.status_code == 302
    assert urlsplit(unsigned.headers["Location"]).path == "/login"
    assert "/login/oauth/authorize?" in query_of(unsigned.headers["Location"])["return_to"]

    emu.sign_in("alice")
    authorized = _authorize(emu, redirect_uri=CALLBACK)
    assert authorized.status_code == 302
    back = authorized.headers["Location"]
    assert back.startswith(f"{CALLBACK}?")
    assert query_of(back)["state"] == "xyz"
    code = query_of(back)["code"]

    wrong_secret = _exchange(emu, code=code, client_secret="nope")
    assert wrong_secret.status_code == 200  # GitHub answers a refused exchange with 200
    assert wrong_secret.json()["error"] == "incorrect_client_credentials"
    answer = _exchange(emu, code=code)
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "scope"}
    assert re.fullmatch(r"ghu_[A-Za-z0-9]{36}", body["access_token"])
    assert (body["token_type"], body["scope"]) == ("bearer", "")
    assert _exchange(emu, code=code).json() == {
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
        "troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    }
    me = requests.get(
        f"{emu.url}/user", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=5
    )
    assert me.status_code == 200
    assert (me.json()["login"], me.json()["name"], me.json()["email"]) == (
        "alice",
        "Alice",
        "alice@example.com",
    )
    assert emu.requests[-1].auth == "user"


def test_oauth_exchange_answers_form_encoded_without_accept_json_and_checks_redirect_uri(
    emu: GitHubEmulator,
) -> None:
    emu.github_app.callback_urls.extend([CALLBACK, "http://127.0.0.1:9/other"])
    emu.sign_in("alice")
    first = query_of(_authorize(emu).headers["Location"])["code"]  # the first callback URL
    form = _exchange(emu, json_answer=False, code=first)
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(form.text))["token_type"] == "bearer"

    second = query_of(_authorize(emu, redirect_uri=CALLBACK).headers["Location"])["code"]
    mismatch = _exchange(emu, code=second, redirect_uri="http://127.0.0.1:9/other")
    assert mismatch.json()["error"] == "redirect_uri_mismatch"
    assert "access_token" in _exchange(emu, code=second, redirect_uri=CALLBACK).json()
    third = query_of(_authorize(emu).headers["Location"])["code"]
    as_json = requests.post(
        f"{emu.url}/login/oauth/access_token",
        json={
            "client_id": emu.github_app.client_id,
            "client_secret": emu.github_app.client_secret,
            "code": third,
        },
        headers={"Accept": "application/json"},
        timeout=5,
    )
    assert as_json.json()["token_type"] == "bearer"

    elsewhere = _authorize(emu, redirect_uri="https://evil.example/steal")
    assert elsewhere.status_code == 302
    told = elsewhere.headers["Location"]
    assert told.startswith(f"{CALLBACK}?")
    assert "code" not in query_of(told)
    assert (query_of(told)["error"], query_of(told)["state"]) == ("redirect_uri_mismatch", "xyz")
    unknown = requests.get(
        f"{emu.url}/login/oauth/authorize?client_id=Iv1.nope", allow_redirects=False, timeout=5
    )
    assert unknown.status_code == 404


def test_oauth_codes_last_ten_minutes(emu: GitHubEmulator) -> None:
    emu.github_app.callback_urls.append(CALLBACK)
    emu.sign_in("alice")
    now = time.time()
    emu.clock = lambda: now
    codes = [query_of(_authorize(emu).headers["Location"])["code"] for _ in range(2)]
    emu.clock = lambda: now + 599.9
    assert "access_token" in _exchange(emu, code=codes[0]).json()
    emu.clock = lambda: now + 600
    assert _exchange(emu, code=codes[1]).json()["error"] == "bad_verification_code"


def test_a_user_sees_the_installations_and_repositories_they_and_the_app_share(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    emu.create_repo("octo/data", installation_id=INSTALLATION)
    emu.create_repo("acme/ml", installation_id=7)
    emu.create_repo("octo/uninstalled")
    emu.set_permission("octo/ml", "alice", "write")
    emu.set_permission("octo/uninstalled", "alice", "admin")
    emu.set_permission("acme/ml", "alice", "none")

    def get(token: str, path: str) -> requests.Response:
        return requests.get(
            f"{emu.url}{path}", headers={"Authorization": f"token {token}"}, timeout=5
        )

    alice = user_token(emu, "alice")
    installations = get(alice, "/user/installations").json()
    assert installations["total_count"] == 1
    assert [i["id"] for i in installations["installations"]] == [INSTALLATION]
    repos = get(alice, f"/user/installations/{INSTALLATION}/repositories").json()
    assert [r["full_name"] for r in repos["repositories"]] == ["octo/ml"]
    assert repos["repositories"][0]["permissions"] == {
        "admin": False,
        "maintain": False,
        "push": True,
        "triage": True,
        "pull": True,
    }
    assert get(alice, "/user/installations/7/repositories").status_code == 404
    owner = user_token(emu, "octo")
    owned = get(owner, f"/user/installations/{INSTALLATION}/repositories").json()
    assert [r["full_name"] for r in owned["repositories"]] == ["octo/ml", "octo/data"]
    assert owned["repositories"][0]["permissions"]["admin"] is True
    assert get(user_token(emu, "bob"), "/user/installations").json() == {
        "total_count": 0,
        "installations": [],
    }


@pytest.mark.parametrize(
    ("who", "path", "status", "message"),
    [
        ("installation", "/user", 403, "Resource not accessible by integration"),
        (
            "user",
            "/repos/octo/ml/contents/params.yaml",
            403,
            "Resource not accessible by integration",
        ),
        ("none", "/user/installations", 401, "Requires authentication"),
        ("forged", "/user", 401, "Bad credentials"),
        ("jwt", "/user", 401, "Bad credentials"),
    ],
)
def test_user_tokens_are_for_the_users_endpoints_only(
    emu: GitHubEmulator, repo: EmulatedRepo, who: str, path: str, status: int, message: str
) -> None:
    emu.set_permission("octo/ml", "alice", "write")
    tokens = {
        "installation": f"token {new_token(emu)}",
        "user": f"token {user_token(emu, 'alice')}",
        "forged": "token ghu_" + "x" * 36,
        "jwt": f"Bearer {app_jwt(emu)}",
    }
    headers = {"Authorization": tokens[who]} if who in tokens else {}
    response = requests.get(f"{emu.url}{path}", headers=headers, timeout=5)
    assert (response.status_code, response.json()["message"]) == (status, message)


def test_manifest_flow_registers_an_app_whose_key_works_and_whose_code_works_once(
    emu: GitHubEmulator, repo: EmulatedRepo
) -> None:
    emu.sign_in("octocat")
    posted = post_manifest(emu, MANIFEST, state="abc")
    assert posted.status_code == 302
    location = posted.headers["Location"]
    assert location.startswith("http://127.0.0.1:9/callback?")
    assert query_of(location)["state"] == "abc"
    code = query_of(location)["code"]

    converted = requests.post(f"{emu.url}/app-manifests/{code}/conversions", timeout=5)
    assert converted.status_code == 201, converted.text
    app = converted.json()
    assert app["slug"] == "mlgate-2"  # "mlgate" is the emulator's own App's name
    assert app["owner"]["login"] == "octocat"
    assert app["permissions"] == {"metadata": "read", **MANIFEST["default_permissions"]}
    assert app["events"] == MANIFEST["default_events"]
    assert re.fullmatch(r"[0-9a-f]{40}", app["webhook_secret"])
    assert app["client_id"].startswith("Iv1.") and len(app["client_secret"]) == 40
    registered = emu.registered_app(str(app["id"]))
    assert registered.hook_url == "https://mlgate.example.com/webhooks/github"
    assert registered.callback_urls == MANIFEST["callback_urls"]

    key = app_jwt(emu, key=app["pem"], iss=str(app["id"]))
    me = requests.get(f"{emu.url}/app", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["slug"], me.json()["installations_count"]) == (
        app["id"],
        "mlgate-2",
        0,
    )
    by_client_id = app_jwt(emu, key=app["pem"], iss=app["client_id"])
    assert (
        requests.get(
            f"{emu.url}/app", headers={"Authorization": f"Bearer {by_client_id}"}, timeout=5
        ).json()["id"]
        == app["id"]
    )
    # Its key is its own: it does not sign for the emulator's App, nor the reverse.
    crossed = app_jwt(emu, key=app["pem"], iss=emu.app_id)
    assert (
        requests.get(
            f"{emu.url}/app", headers={"Authorization": f"Bearer {crossed}"}, timeout=5
        ).status_code
        == 401
    )
    # Another App's installations are not its own.
    refused = requests.post(
        f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert refused.status_code == 404
    emu.add_installation(99, "octocat", app_id=str(app["id"]))
    mine = requests.post(
        f"{emu.url}/app/installations/99/access_tokens",
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert mine.status_code == 201
    assert mine.json()["permissions"] == {"metadata": "read", **MANIFEST["default_permissions"]}

    again = requests.post(f"{emu.url}/app-manifests/{code}/conversions", timeout=5)
    assert again.status_code == 422
    never = requests.post(f"{emu.url}/app-manifests/0123456789abcdef0123/conversions", timeout=5)
    assert never.status_code == 404


def test_a_manifest_code_lasts_one_hour(emu: GitHubEmulator) -> None:
    now = time.time()
    emu.clock = lambda: now
    codes = [manifest_code(emu, {**MANIFEST, "name": f"app {i}"}) for i in range(2)]
    emu.clock = lambda: now + 3599.9
    assert requests.post(f"{emu.url}/app-manifests/{codes[0]}/conversions", timeout=5).ok
    emu.clock = lambda: now + 3600
    late = requests.post(f"{emu.url}/app-manifests/{codes[1]}/conversions", timeout=5)
    assert late.status_code == 422


def test_an_organisations_app_belongs_to_the_organisation(emu: GitHubEmulator) -> None:
    code = manifest_code(emu, org="acme")
    app = requests.post(f"{emu.url}/app-manifests/{code}/conversions", timeout=5).json()
    assert (app["owner"]["login"], app["owner"]["type"]) == ("acme", "Organization")
    emu.add_user("alice")
    refused = post_manifest(emu, MANIFEST, org="alice")
    assert refused.status_code == 404  # a user is no organisation


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({k: v for k, v in MANIFEST.items() if k != "url"}, "url is required"),
        ({**MANIFEST, "hook_attributes": {"active": True}}, "hook_attributes.url"),
        ({**MANIFEST, "callback_urls": [f"https://e.example/{i}" for i in range(11)]}, "10"),
        ({**MANIFEST, "default_permissions": {"checks": "everything"}}, "read, write or admin"),
        ({**MANIFEST, "default_permissions": {"checks": "write"}}, "push, pull_request"),
        ({**MANIFEST, "name": "m" * 35}, "34"),
        ("not an object", "JSON object"),
    ],
)
def test_a_manifest_github_would_refuse_registers_nothing(
    emu: GitHubEmulator, manifest: Any, problem: str
) -> None:
    emu.sign_in("octocat")
    response = post_manifest(emu, manifest)
    assert response.status_code == 422
    assert problem in response.text
    assert [a.slug for a in emu.apps.apps()] == ["mlgate"]


def test_the_manifest_page_needs_someone_signed_in(emu: GitHubEmulator) -> None:
    response = post_manifest(emu, MANIFEST, state="abc")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert query_of(response.headers["Location"])["return_to"] == "/settings/apps/new?state=abc"
    assert len(emu.apps.apps()) == 1
    recorded = emu.requests[-1]
    assert (recorded.method, recorded.path, recorded.status) == ("POST", "/settings/apps/new", 302)


# -- shapes ----------------------------------------------------------------------------------


def test_every_operation_answers_in_the_documented_shape(
    emu: GitHubEmulator, gh: Client, repo: EmulatedRepo, pr: dict[str, Any]
) -> None:
    spec = load_spec(SPEC_PATH)
    jwt_header = {"Authorization": f"Bearer {app_jwt(emu)}"}
    with Receiver() as receiver:
        emu.configure_webhook(receiver.url, "s3cret")
        emu.send_webhook("ping", {"zen": "x"})
    number, sha = pr["number"], pr["head"]["sha"]
    comment = gh.post(f"/repos/octo/ml/issues/{number}/comments", {"body": "hi"})
    run = gh.post(
        "/repos/octo/ml/check-runs",
        {"name": "q", "head_sha": sha, "output": {"title": "t", "summary": "s"}},
    )
    deployment = gh.post("/repos/octo/ml/deployments", {"ref": "main", "required_contexts": []})
    answers: dict[str, requests.Response] = {
        "apps/create-installation-access-token": requests.post(
            f"{emu.url}/app/installations/{INSTALLATION}/access_tokens",
            headers=jwt_header,
            timeout=5,
        ),
        "apps/get-repo-installation": requests.get(
            f"{emu.url}/repos/octo/ml/installation", headers=jwt_header, timeout=5
        ),
        "apps/list-webhook-deliveries": requests.get(
            f"{emu.url}/app/hook/deliveries", headers=jwt_header, timeout=5
        ),
        "checks/create": run,
        "checks/update": gh.patch(
            f"/repos/octo/ml/check-runs/{run.json()['id']}", {"conclusion": "neutral"}
        ),
        "checks/list-for-ref": gh.get(f"/repos/octo/ml/commits/{sha}/check-runs"),
        "issues/create-comment": comment,
        "issues/list-comments": gh.get(f"/repos/octo/ml/issues/{number}/comments"),
        "issues/update-comment": gh.patch(
            f"/repos/octo/ml/issues/comments/{comment.json()['id']}", {"body": "ho"}
        ),
        "reactions/create-for-issue-comment": gh.post(
            f"/repos/octo/ml/issues/comments/{comment.json()['id']}/reactions", {"content": "+1"}
        ),
        "repos/get-collaborator-permission-level": gh.get(
            "/repos/octo/ml/collaborators/alice/permission"
        ),
        "pulls/get": gh.get(f"/repos/octo/ml/pulls/{number}"),
        "pulls/list-files": gh.get(f"/repos/octo/ml/pulls/{number}/files"),
        "repos/get-content": gh.get("/repos/octo/ml/contents/params.yaml"),
        "repos/compare-commits-with-basehead": gh.get("/repos/octo/ml/compare/main...feature"),
        "repos/create-commit-status": gh.post(
            f"/repos/octo/ml/statuses/{sha}", {"state": "success"}
        ),
        "repos/create-deployment": deployment,
        "repos/create-deployment-status": gh.post(
            f"/repos/octo/ml/deployments/{deployment.json()['id']}/statuses", {"state": "success"}
        ),
    }
    for operation, response in answers.items():
        assert response.ok, (operation, response.status_code, response.text)
        problems = spec.validate_response(operation, response.status_code, response.json())
        assert problems == [], (operation, problems[:3])
    directory = gh.get("/repos/octo/ml/contents/src")
    assert spec.validate_response("repos/get-content", 200, directory.json()) == []
    delivery_id = emu.deliveries[0]["id"]
    with Receiver() as receiver:
        emu.configure_webhook(receiver.url, "s3cret")
        redo = requests.post(
            f"{emu.url}/app/hook/deliveries/{delivery_id}/attempts", headers=jwt_header, timeout=5
        )
    assert spec.validate_response("apps/redeliver-webhook-delivery", 202, redo.json()) == []
    second = _second_wave_answers(emu, repo, number)
    for operation, response in second.items():
        assert response.ok, (operation, response.status_code, response.text)
        problems = spec.validate_response(operation, response.status_code, response.json())
        assert problems == [], (operation, problems[:3])
    assert set(answers) | set(second) | {"apps/redeliver-webhook-delivery"} == spec.operation_ids
    assert len(spec.operation_ids) == 38


def _second_wave_answers(
    emu: GitHubEmulator, repo: EmulatedRepo, number: int
) -> dict[str, requests.Response]:
    gh = Client(emu, writer_token(emu))
    jwt_header = {"Authorization": f"Bearer {app_jwt(emu)}"}
    main = repo.head("main")
    assert gh.get("/repos/octo/ml/git/ref/heads/main").json()["object"]["sha"] == main
    blob = gh.post("/repos/octo/ml/git/blobs", {"content": "x,y\n", "encoding": "utf-8"})
    base_tree = repo.git.git("rev-parse", "main^{tree}").decode().strip()
    tree = gh.post(
        "/repos/octo/ml/git/trees",
        {
            "base_tree": base_tree,
            "tree": [
                {"path": "data/d.csv", "mode": "100644", "type": "blob", "sha": blob.json()["sha"]}
            ],
        },
    )
    commit = gh.post(
        "/repos/octo/ml/git/commits",
        {"message": "Data", "tree": tree.json()["sha"], "parents": [main]},
    )
    ref = gh.post("/repos/octo/ml/git/refs", {"ref": "refs/heads/shape", "sha": main})
    moved = gh.patch("/repos/octo/ml/git/refs/heads/shape", {"sha": commit.json()["sha"]})
    opened = gh.post("/repos/octo/ml/pulls", {"title": "Data", "head": "shape", "base": "main"})
    issue = gh.post("/repos/octo/ml/issues", {"title": "Drift", "labels": ["mlgate:monitor"]})
    emu.add_team_member("octo", "approvers", "alice")
    emu.set_permission("octo/ml", "alice", "write")
    user = {"Authorization": f"token {user_token(emu, 'alice')}"}
    conversion = requests.post(
        f"{emu.url}/app-manifests/{manifest_code(emu)}/conversions", timeout=5
    )
    return {
        "git/create-blob": blob,
        "git/create-tree": tree,
        "git/create-commit": commit,
        "git/create-ref": ref,
        "git/update-ref": moved,
        "git/get-ref": gh.get("/repos/octo/ml/git/ref/heads/shape"),
        "pulls/create": opened,
        "pulls/list": gh.get("/repos/octo/ml/pulls?state=all"),
        "pulls/list-commits": gh.get(f"/repos/octo/ml/pulls/{number}/commits"),
        "issues/create": issue,
        "issues/list-for-repo": gh.get("/repos/octo/ml/issues?state=all"),
        "issues/update": gh.patch(
            f"/repos/octo/ml/issues/{issue.json()['number']}", {"state": "closed"}
        ),
        "issues/add-labels": gh.post(
            f"/repos/octo/ml/issues/{number}/labels", {"labels": ["bug", "mlgate:retrain"]}
        ),
        "teams/get-membership-for-user-in-org": gh.get(
            "/orgs/octo/teams/approvers/memberships/alice"
        ),
        "apps/get-authenticated": requests.get(f"{emu.url}/app", headers=jwt_header, timeout=5),
        "apps/create-from-manifest": conversion,
        "users/get-authenticated": requests.get(f"{emu.url}/user", headers=user, timeout=5),
        "apps/list-installations-for-authenticated-user": requests.get(
            f"{emu.url}/user/installations", headers=user, timeout=5
        ),
        "apps/list-installation-repos-for-authenticated-user": requests.get(
            f"{emu.url}/user/installations/{INSTALLATION}/repositories", headers=user, timeout=5
        ),
    }
