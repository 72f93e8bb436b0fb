"""POST /api/v1/metrics: tokens per repository, every answer code, and what is stored."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue

from bot import create_app
from bot.embedded_redis import EmbeddedRedis
from bot.loopback import serve
from bot.state import production_uploads, upload_tokens, uploads
from bot.state.queues import CHECK_PRODUCTION, EVENTS
from bot.state.uploads import UPLOAD_LIMIT, UPLOAD_TTL, uploaded_metrics, uploaded_runs

REPO = "octo-org/models"
SHA = "6fd84f4c2aecae7b1e6ce516b634c220d4a3e3e4"
OTHER_SHA = "0387f435823058fdc05f3ef86fb9f28b885ccf7f"
RUN_ANSWER = "malformed parameter: run must be 1-100 letters, digits, '.', '_' or '-'"
PATH_ANSWER = "malformed parameter: path must be a file path inside the repository"
METRICS = {"accuracy": 0.91, "loss": 0.23, "per_class": {"cat": 0.9, "dog": 0.92}}


@pytest.fixture
def app(env: dict[str, str], redis_conn: redis.Redis) -> Flask:
    return create_app(env)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


@pytest.fixture
def token(redis_conn: redis.Redis) -> str:
    return upload_tokens.create(redis_conn, REPO, time.time())


def upload(
    client: FlaskClient,
    body: bytes,
    token: str | None,
    *,
    repo: str | None = REPO,
    sha: str | None = SHA,
    run: str | None = "42",
    path: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, str]:
    params = {"repo": repo, "sha": sha, "run": run, "path": path}
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = client.post(
        "/api/v1/metrics",
        query_string={k: v for k, v in params.items() if v is not None},
        data=body,
        headers=headers,
    )
    return response.status_code, response.get_data(as_text=True)


def metrics_json(data: object = METRICS) -> bytes:
    return json.dumps(data).encode()


def test_an_upload_with_the_repositorys_token_is_stored_for_its_repo_sha_and_run(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    status, text = upload(client, metrics_json(), token)
    assert (status, text) == (201, f"stored: 4 metrics of metrics.json for {REPO}@{SHA} run 42\n")
    flattened = {"accuracy": 0.91, "loss": 0.23, "per_class.cat": 0.9, "per_class.dog": 0.92}
    assert uploaded_metrics(redis_conn, REPO, SHA, "42") == {"metrics.json": flattened}
    assert uploaded_metrics(redis_conn, REPO, SHA) == {"metrics.json": flattened}
    # Bound to what the URL said: nothing for another commit, run or repository.
    assert uploaded_metrics(redis_conn, REPO, OTHER_SHA) == {}
    assert uploaded_metrics(redis_conn, REPO, SHA, "43") == {}
    assert uploaded_metrics(redis_conn, "octo-org/other", SHA) == {}


def test_repository_names_and_shas_are_matched_without_regard_to_case(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    assert upload(client, metrics_json(), token, repo="Octo-Org/Models", sha=SHA.upper())[0] == 201
    assert uploaded_metrics(redis_conn, "OCTO-ORG/models", SHA)["metrics.json"]["loss"] == 0.23


def test_uploads_of_one_run_collect_files_and_the_latest_run_is_read_by_default(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    assert upload(client, metrics_json({"accuracy": 0.8}), token, run="1")[0] == 201
    assert upload(client, metrics_json({"accuracy": 0.9}), token, run="2")[0] == 201
    assert upload(client, b"latency_ms: 12\n", token, run="2", path="eval/speed.yaml")[0] == 201
    assert uploaded_runs(redis_conn, REPO, SHA) == ["1", "2"]
    assert uploaded_metrics(redis_conn, REPO, SHA) == {
        "eval/speed.yaml": {"latency_ms": 12},
        "metrics.json": {"accuracy": 0.9},
    }
    # Files of different runs are never mixed.
    assert uploaded_metrics(redis_conn, REPO, SHA, "1") == {"metrics.json": {"accuracy": 0.8}}


def test_uploading_the_same_file_of_a_run_again_replaces_it(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    assert upload(client, metrics_json({"accuracy": 0.8, "loss": 1}), token)[0] == 201
    assert upload(client, metrics_json({"accuracy": 0.85}), token)[0] == 201
    assert uploaded_metrics(redis_conn, REPO, SHA, "42") == {"metrics.json": {"accuracy": 0.85}}


def test_uploads_expire(client: FlaskClient, redis_conn: redis.Redis, token: str) -> None:
    assert upload(client, metrics_json(), token)[0] == 201
    for key in (uploads.upload_key(REPO, SHA, "42"), uploads.index_key(REPO, SHA)):
        assert 0 < redis_conn.ttl(key) <= UPLOAD_TTL


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("metrics.yaml", b"accuracy: 0.91\nper_class:\n  cat: 0.9\n"),
        ("eval/metrics.toml", b"accuracy = 0.91\n[per_class]\ncat = 0.9\n"),
    ],
)
def test_yaml_and_toml_are_read_by_the_extension_of_path(
    client: FlaskClient, redis_conn: redis.Redis, token: str, path: str, body: bytes
) -> None:
    assert upload(client, body, token, path=path)[0] == 201
    assert uploaded_metrics(redis_conn, REPO, SHA) == {
        path: {"accuracy": 0.91, "per_class.cat": 0.9}
    }


def test_a_token_of_another_repository_is_refused(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    other = upload_tokens.create(redis_conn, "octo-org/other", time.time())
    status, text = upload(client, metrics_json(), other)
    assert (status, text) == (
        401,
        f"bad token: not a metrics upload token of {REPO} "
        f"(an operator creates one with `mlgate token create {REPO}`)\n",
    )
    assert uploaded_metrics(redis_conn, REPO, SHA) == {}


def test_a_revoked_token_is_refused(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    assert upload_tokens.revoke(redis_conn, REPO) == 1
    assert upload(client, metrics_json(), token)[0] == 401


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw=="])
def test_a_missing_token_is_401_and_names_the_scheme(
    client: FlaskClient, token: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post(
        "/api/v1/metrics",
        query_string={"repo": REPO, "sha": SHA, "run": "1"},
        data=metrics_json(),
        headers=headers,
    )
    assert response.status_code == 401
    assert response.get_data(as_text=True) == (
        "missing token: send Authorization: Bearer <token>\n"
    )
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="mlgate"'


def test_a_wrong_token_is_401(client: FlaskClient, token: str) -> None:
    status, text = upload(client, metrics_json(), token + "x")
    assert status == 401 and text.startswith("bad token:")


@pytest.mark.parametrize(
    ("params", "answer"),
    [
        ({"repo": None}, "missing parameter: repo (owner/name)"),
        ({"repo": "models"}, "malformed parameter: repo must be owner/name"),
        ({"repo": "octo-org/models/extra"}, "malformed parameter: repo must be owner/name"),
        ({"sha": None}, "missing parameter: sha"),
        ({"sha": SHA[:7]}, "malformed parameter: sha must be 40 hex digits"),
        ({"sha": "g" * 40}, "malformed parameter: sha must be 40 hex digits"),
        ({"run": None}, "missing parameter: run"),
        ({"run": "a:b"}, RUN_ANSWER),
        ({"run": "r" * 101}, RUN_ANSWER),
        ({"path": "../metrics.json"}, PATH_ANSWER),
        ({"path": "/etc/metrics.json"}, PATH_ANSWER),
        ({"path": ""}, PATH_ANSWER),
    ],
)
def test_a_missing_or_invalid_parameter_is_400(
    client: FlaskClient, redis_conn: redis.Redis, token: str, params: dict[str, str], answer: str
) -> None:
    status, text = upload(client, metrics_json(), token, **params)
    assert (status, text) == (400, answer + "\n")
    assert redis_conn.keys("mlgate:upload*") == []


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (None, b"{not json", "metrics.json: invalid JSON: Expecting property name"),
        (None, b"", "metrics.json: invalid JSON: Expecting value"),
        (None, b"[0.9, 0.1]", "metrics.json holds no metrics"),
        (None, b"0.9", "metrics.json holds no metrics"),
        (None, b'{"confusion": [[1, 2], [3, 4]]}', "metrics.json holds no metrics"),
        (None, b"\xff\xfe", "metrics.json: not UTF-8 text"),
        ("metrics.yaml", b"accuracy: [0.9\n", "metrics.yaml: invalid YAML"),
        ("metrics.toml", b"accuracy = \n", "metrics.toml: invalid TOML"),
    ],
)
def test_a_body_that_is_not_a_metrics_document_is_400(
    client: FlaskClient,
    redis_conn: redis.Redis,
    token: str,
    path: str | None,
    body: bytes,
    reason: str,
) -> None:
    status, text = upload(client, body, token, path=path)
    assert status == 400
    assert text.startswith(f"malformed metrics: {reason}")
    assert text.count("\n") == 1
    assert uploaded_metrics(redis_conn, REPO, SHA) == {}


def test_a_body_of_1_mib_plus_1_byte_is_413(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    body = metrics_json({"pad": "x" * UPLOAD_LIMIT})[: UPLOAD_LIMIT + 1]
    assert len(body) == 1_048_577
    status, text = upload(client, body, token)
    assert (status, text) == (413, "payload too large: over 1048576 bytes (1 MiB) of metrics\n")
    assert uploaded_metrics(redis_conn, REPO, SHA) == {}


def test_a_body_of_exactly_1_mib_is_not_refused_for_size(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    padding = UPLOAD_LIMIT - len(metrics_json({"note": ""}))
    body = metrics_json({"note": "x" * padding})
    assert len(body) == UPLOAD_LIMIT
    assert upload(client, body, token)[0] == 201


def test_a_chunked_body_over_1_mib_is_413(env: dict[str, str], token: str) -> None:
    # No Content-Length (chunked over real HTTP): the limit applies while the body is read.
    def chunks() -> Iterator[bytes]:
        for _ in range(UPLOAD_LIMIT // 65536 + 1):
            yield b" " * 65536

    with serve(create_app(env)) as url:
        response = requests.post(
            f"{url}/api/v1/metrics",
            params={"repo": REPO, "sha": SHA, "run": "1"},
            data=chunks(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert (response.status_code, response.text) == (
        413,
        "payload too large: over 1048576 bytes (1 MiB) of metrics\n",
    )


def test_redis_down_is_503(env: dict[str, str]) -> None:
    stopped = EmbeddedRedis().start()
    app = create_app(env | {"REDIS_URL": stopped.url})
    stopped.stop()
    with app.test_client() as client:
        status, text = upload(client, metrics_json(), "mlgate_anything")
    assert status == 503
    assert text.startswith("redis unavailable:") and text.endswith("; retry later\n")


def test_curls_form_content_type_does_not_decode_the_body(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    # `curl --data-binary @f` sends Content-Type: application/x-www-form-urlencoded; a form
    # parser would turn `+` into a space and split at `&`.
    body = metrics_json({"f1+macro": 0.5, "a&b": 1})
    status, _ = upload(client, body, token, content_type="application/x-www-form-urlencoded")
    assert status == 201
    assert uploaded_metrics(redis_conn, REPO, SHA) == {"metrics.json": {"f1+macro": 0.5, "a&b": 1}}


def readme_curl_line() -> str:
    """The upload step of docs/semaphore.md (Connecting Semaphore), continuation lines joined."""
    readme = (Path(__file__).parent.parent / "docs" / "semaphore.md").read_text()
    match = re.search(r"^curl -fsS .*?(?<!\\)$", readme, re.MULTILINE | re.DOTALL)
    assert match is not None, "docs/semaphore.md has no `curl -fsS` upload line"
    return re.sub(r"\\\n\s*", "", match.group())


def test_the_readme_curl_line_sends_the_file_as_it_is() -> None:
    line = readme_curl_line()
    assert '-H "Authorization: Bearer $MLGATE_TOKEN"' in line
    assert "--data-binary @metrics.json" in line
    assert "/api/v1/metrics?repo=octo-org/models&sha=$SHA&run=$MLGATE_RUN_ID" in line


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_line_uploads_metrics_json(
    env: dict[str, str], redis_conn: redis.Redis, token: str, tmp_path: Path
) -> None:
    (tmp_path / "metrics.json").write_bytes(metrics_json())
    with serve(create_app(env)) as url:
        result = subprocess.run(
            ["sh", "-c", readme_curl_line()],
            cwd=tmp_path,
            env=os.environ
            | {"MLGATE_TOKEN": token, "MLGATE_PUBLIC_URL": url, "SHA": SHA, "MLGATE_RUN_ID": "7"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"stored: 4 metrics of metrics.json for {REPO}@{SHA} run 7\n"
    assert uploaded_metrics(redis_conn, REPO, SHA, "7")["metrics.json"]["accuracy"] == 0.91


def test_the_token_never_reaches_a_log_line(
    client: FlaskClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upload(client, metrics_json(), token)
    upload(client, metrics_json(), token + "x")
    upload(client, b"{", token)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "metrics upload stored" in caplog.text
    assert token not in logged


def production_upload(
    client: FlaskClient, token: str, accuracy: float, env: str = "production"
) -> tuple[int, str]:
    response = client.post(
        "/api/v1/metrics",
        query_string={"repo": REPO, "sha": SHA, "env": env},
        data=metrics_json({"accuracy": accuracy}),
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.get_data(as_text=True)


def test_live_metrics_of_an_environment_need_no_run_and_queue_one_check(
    client: FlaskClient, redis_conn: redis.Redis, token: str
) -> None:
    assert production_upload(client, token, 0.9) == (
        201,
        f"stored: 1 metrics of metrics.json for {REPO} in production at {SHA}\n",
    )
    assert production_upload(client, token, 0.7)[0] == 201
    series = production_uploads.recent(redis_conn, REPO, "production")
    assert [o.metrics for o in series] == [
        {"metrics.json": {"accuracy": 0.9}},
        {"metrics.json": {"accuracy": 0.7}},
    ]
    assert {o.sha for o in series} == {SHA}
    # Kept apart from CI uploads and from other environments.
    assert uploaded_metrics(redis_conn, REPO, SHA) == {}
    assert production_uploads.recent(redis_conn, REPO, "staging") == []
    # Two uploads in a row while the first check waits: one check judges both.
    jobs = Queue(EVENTS, connection=redis_conn).jobs
    assert [(j.func_name, j.args) for j in jobs] == [(CHECK_PRODUCTION, (REPO, "production"))]


@pytest.mark.parametrize("name", ["", "a b", "x" * 51, "prod:uction"])
def test_a_malformed_environment_name_is_400(client: FlaskClient, token: str, name: str) -> None:
    assert production_upload(client, token, 0.9, env=name) == (
        400,
        "malformed parameter: env must be 1-50 letters, digits, '.', '_' or '-'\n",
    )
