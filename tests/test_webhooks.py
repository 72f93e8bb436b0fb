"""POST /webhooks/github: every answer code, de-duplication and redelivery, against real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.registry import FailedJobRegistry

from bot import create_app
from bot.embedded_redis import EmbeddedRedis
from bot.errors import SettingsError
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.installations import installed_repositories
from bot.state.queues import EVENTS
from bot.web.webhook_views import BODY_LIMIT
from tests.support import SECRET, payload, run_jobs, webhook_headers


@pytest.fixture
def app(env: dict[str, str], redis_conn: redis.Redis) -> Flask:
    return create_app(env)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def post(
    client: FlaskClient, event: str, body: bytes, delivery: str | None = None, **headers: str
) -> tuple[int, str]:
    sent = webhook_headers(event, body, delivery=delivery) | headers
    response = client.post("/webhooks/github", data=body, headers=sent)
    return response.status_code, response.get_data(as_text=True)


def queued(conn: redis.Redis) -> int:
    return Queue(EVENTS, connection=conn).count


def test_signed_event_is_accepted_and_enqueued(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = json.dumps(payload("push")).encode()
    status, text = post(client, "push", body, delivery="d-1")
    assert (status, text) == (202, "accepted: delivery d-1\n")
    job = Queue(EVENTS, connection=redis_conn).jobs[0]
    assert job.args == ("push", "d-1")
    stored = deliveries.payload(redis_conn, "github", "d-1")
    assert stored is not None and json.loads(stored) == payload("push")
    assert deliveries.state(redis_conn, "github", "d-1") is DeliveryState.QUEUED


def test_same_delivery_twice_is_answered_200_and_enqueued_once(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = json.dumps(payload("push")).encode()
    assert post(client, "push", body, delivery="d-2")[0] == 202
    status, text = post(client, "push", body, delivery="d-2")
    assert status == 200
    assert text == "duplicate: delivery d-2 was seen before\n"
    assert queued(redis_conn) == 1


def test_delivery_done_after_its_job_succeeded_stays_a_duplicate(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = json.dumps(payload("installation", "created.payload")).encode()
    assert post(client, "installation", body, delivery="d-3")[0] == 202
    run_jobs(redis_conn)
    assert deliveries.state(redis_conn, "github", "d-3") is DeliveryState.DONE
    assert installed_repositories(redis_conn) == {"Codertocat/Hello-World": 957387}
    assert deliveries.payload(redis_conn, "github", "d-3") is None  # done: the body is dropped
    assert post(client, "installation", body, delivery="d-3")[0] == 200
    assert queued(redis_conn) == 0


def test_redelivery_of_a_failed_job_is_accepted_and_processed_again(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    broken = payload("installation_repositories", "added.payload")
    del broken["installation"]  # the handler cannot know where the repositories were added
    body = json.dumps(broken).encode()
    assert post(client, "installation_repositories", body, delivery="d-4")[0] == 202
    run_jobs(redis_conn)
    # MLGATE_RETRY_DELAYS=0,0: the first attempt and two retries all failed.
    assert deliveries.state(redis_conn, "github", "d-4") is DeliveryState.FAILED
    assert FailedJobRegistry(EVENTS, connection=redis_conn).get_job_ids() == ["github-d-4"]

    assert post(client, "installation_repositories", body, delivery="d-4")[0] == 202
    assert queued(redis_conn) == 1
    assert FailedJobRegistry(EVENTS, connection=redis_conn).get_job_ids() == []


def test_ping_is_answered_200_and_not_enqueued(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = json.dumps(payload("ping")).encode()
    status, text = post(client, "ping", body)
    assert status == 200
    assert text.startswith("pong")
    assert queued(redis_conn) == 0


def test_missing_signature_is_401(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/github",
        data=b"{}",
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "x"},
    )
    assert response.status_code == 401
    assert response.get_data(as_text=True) == "missing signature: no X-Hub-Signature-256 header\n"


def test_bad_signature_is_401_and_nothing_is_enqueued(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = json.dumps(payload("push")).encode()
    forged = webhook_headers("push", body, secret="not-the-secret")
    response = client.post("/webhooks/github", data=body, headers=forged)
    assert response.status_code == 401
    assert "does not match" in response.get_data(as_text=True)
    assert queued(redis_conn) == 0


def test_a_rotated_secret_is_accepted(env: dict[str, str], redis_conn: redis.Redis) -> None:
    app = create_app(env | {"GITHUB_WEBHOOK_SECRET": f"new-secret,{SECRET}"})
    body = json.dumps(payload("push")).encode()
    with app.test_client() as client:
        assert post(client, "push", body)[0] == 202


def test_malformed_json_is_400(client: FlaskClient) -> None:
    status, text = post(client, "push", b"{not json")
    assert (status, text) == (400, "malformed payload: the body is not a JSON object\n")
    assert post(client, "push", b"[1, 2]")[0] == 400
    assert post(client, "push", b"")[0] == 400


def test_a_signed_body_shaped_like_an_object_is_accepted_without_being_parsed(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    # Only the shape is checked on the request path; the job parses it (and fails for good).
    assert post(client, "push", b" {not json} \n", delivery="shape-1")[0] == 202
    assert deliveries.payload(redis_conn, "github", "shape-1") == b" {not json} \n"


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_or_delivery_header_is_400(client: FlaskClient, header: str) -> None:
    body = json.dumps(payload("push")).encode()
    headers = webhook_headers("push", body)
    del headers[header]
    response = client.post("/webhooks/github", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == f"missing header: {header}\n"


def test_a_delivery_id_that_is_not_a_guid_is_400(client: FlaskClient) -> None:
    body = json.dumps(payload("push")).encode()
    status, text = post(client, "push", body, delivery="../../etc:passwd")
    assert (status, text) == (400, "malformed header: X-GitHub-Delivery must be a GUID\n")


def test_form_encoded_delivery_is_accepted(client: FlaskClient) -> None:
    form = "payload=" + json.dumps(payload("push")).replace("%", "%25").replace("&", "%26")
    body = form.replace("+", "%2B").encode()
    headers = webhook_headers("push", body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = client.post("/webhooks/github", data=body, headers=headers)
    assert response.status_code == 202


def test_body_over_25_mib_is_413(client: FlaskClient, redis_conn: redis.Redis) -> None:
    body = b" " * (BODY_LIMIT + 1)
    status, text = post(client, "push", body)
    assert status == 413
    assert text == f"payload too large: over {BODY_LIMIT} bytes\n"
    assert queued(redis_conn) == 0


def test_body_of_exactly_25_mib_is_not_refused_for_size(client: FlaskClient) -> None:
    padding = BODY_LIMIT - len(b'{"pad": ""}')
    body = b'{"pad": "' + b"x" * padding + b'"}'
    assert len(body) == BODY_LIMIT
    assert post(client, "push", body)[0] == 202


def test_redis_down_is_503_within_a_second(env: dict[str, str]) -> None:
    stopped = EmbeddedRedis().start()
    app = create_app(env | {"REDIS_URL": stopped.url})
    stopped.stop()
    body = json.dumps(payload("push")).encode()
    with app.test_client() as client:
        started = time.monotonic()
        status, text = post(client, "push", body)
        elapsed = time.monotonic() - started
    assert status == 503
    assert text.startswith("redis unavailable:")
    assert elapsed < 1.0


def test_readyz_reports_redis_and_healthz_does_not_need_it(
    client: FlaskClient, env: dict[str, str]
) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    down = create_app(env | {"REDIS_URL": "redis://127.0.0.1:1/0"})
    with down.test_client() as client_without_redis:
        assert client_without_redis.get("/healthz").status_code == 200
        assert client_without_redis.get("/readyz").status_code == 503


def test_app_refuses_to_start_without_a_webhook_secret(redis_url: str) -> None:
    with pytest.raises(SettingsError, match="GITHUB_WEBHOOK_SECRET is not set"):
        create_app({"REDIS_URL": redis_url})


def test_importing_the_app_and_jobs_reads_no_environment() -> None:
    # An empty environment: any import-time os.environ[...] or connection would fail here.
    code = "import bot, bot.cli, workers.jobs, workers.worker; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], env={}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
