"""POST /webhooks/semaphore: every answer code, de-duplication and the worker run, real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue

from bot import create_app
from bot.core.routing import Event
from bot.embedded_redis import EmbeddedRedis
from bot.handlers import router
from bot.loopback import serve
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.queues import EVENTS
from bot.web.webhook_views import BODY_LIMIT
from tests.support import FIXTURES, SECRET, run_jobs, webhook_headers

SEMAPHORE_FIXTURES = FIXTURES / "semaphore"
SEMAPHORE_SECRET = "semaphore-webhook-secret"
PIPELINE_DONE = SEMAPHORE_FIXTURES / "pipeline-done-pull-request-failed.zulip.json"


def sign(body: bytes, secret: str = SEMAPHORE_SECRET) -> str:
    """X-Semaphore-Signature-256 as Semaphore computes it: bare lowercase hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def semaphore_headers(
    body: bytes, *, webhook_id: str | None = None, secret: str = SEMAPHORE_SECRET
) -> dict[str, str]:
    """The headers Semaphore's notifier sends (notifications/lib/.../workers/webhook.ex)."""
    return {
        "Content-type": "application/json",
        "User-Agent": "Semaphore-Webhook",
        "X-Semaphore-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Semaphore-Signature-256": sign(body, secret),
    }


@pytest.fixture
def app(env: dict[str, str], redis_conn: redis.Redis) -> Flask:
    return create_app(env | {"SEMAPHORE_WEBHOOK_SECRET": SEMAPHORE_SECRET})


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Events the router hands to a `semaphore` handler (none is registered in the product)."""
    events: list[Event] = []

    def record(event: Event, ctx: Any) -> None:
        events.append(event)

    monkeypatch.setitem(router._routes, ("semaphore", None), [record])
    return events


def post(
    client: FlaskClient, body: bytes, webhook_id: str | None = None, **headers: str
) -> tuple[int, str]:
    sent = semaphore_headers(body, webhook_id=webhook_id) | headers
    response = client.post("/webhooks/semaphore", data=body, headers=sent)
    return response.status_code, response.get_data(as_text=True)


def queued(conn: redis.Redis) -> int:
    return Queue(EVENTS, connection=conn).count


def test_semaphores_own_signature_vector_passes_verification(
    env: dict[str, str], redis_conn: redis.Redis
) -> None:
    vector = json.loads((SEMAPHORE_FIXTURES / "webhook-signature-vector.json").read_text())
    app = create_app(env | {"SEMAPHORE_WEBHOOK_SECRET": vector["secret"]})
    body = vector["body"].encode()
    headers = {"X-Semaphore-Webhook-Id": str(uuid.uuid4())}
    with app.test_client() as client:
        good = client.post(
            "/webhooks/semaphore",
            data=body,
            headers=headers | {"X-Semaphore-Signature-256": vector["signature"]},
        )
        forged = vector["signature"][:-1] + ("0" if vector["signature"][-1] != "0" else "1")
        bad = client.post(
            "/webhooks/semaphore",
            data=body,
            headers=headers | {"X-Semaphore-Signature-256": forged},
        )
    # "body" is not JSON: refused for that, after the signature was accepted.
    assert (good.status_code, good.get_data(as_text=True)) == (
        400,
        "malformed payload: the body is not a JSON object\n",
    )
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "fixture", ["pipeline-done-pull-request-failed.zulip.json", "pipeline-done-stopped.docs.json"]
)
def test_pipeline_done_notification_is_accepted_stored_and_enqueued(
    client: FlaskClient, redis_conn: redis.Redis, fixture: str
) -> None:
    body = (SEMAPHORE_FIXTURES / fixture).read_bytes()
    webhook_id = "5b5a8f3e-2a47-4c39-9f8e-0d3c0c2b7d11"
    assert post(client, body, webhook_id) == (202, f"accepted: delivery {webhook_id}\n")
    [job] = Queue(EVENTS, connection=redis_conn).jobs
    assert job.id == f"semaphore-{webhook_id}"
    assert job.func_name == "workers.jobs.handle_semaphore_event"
    assert job.args == (webhook_id,)
    assert job.meta == {"source": "semaphore", "delivery_id": webhook_id}
    assert deliveries.payload(redis_conn, "semaphore", webhook_id) == body
    assert deliveries.state(redis_conn, "semaphore", webhook_id) is DeliveryState.QUEUED


def test_a_sha256_prefix_on_the_signature_is_tolerated(client: FlaskClient) -> None:
    body = PIPELINE_DONE.read_bytes()
    prefixed = "sha256=" + sign(body)
    assert post(client, body, **{"X-Semaphore-Signature-256": prefixed})[0] == 202


def test_a_retry_with_the_same_webhook_id_is_answered_200_and_enqueued_once(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = PIPELINE_DONE.read_bytes()
    webhook_id = str(uuid.uuid4())
    assert post(client, body, webhook_id)[0] == 202
    assert post(client, body, webhook_id) == (
        200,
        f"duplicate: delivery {webhook_id} was seen before\n",
    )
    assert queued(redis_conn) == 1


def test_a_github_delivery_and_a_semaphore_webhook_with_the_same_id_are_both_accepted(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    shared_id = str(uuid.uuid4())
    github_body = json.dumps({"zen": "not a ping"}).encode()
    github = client.post(
        "/webhooks/github",
        data=github_body,
        headers=webhook_headers("push", github_body, delivery=shared_id),
    )
    assert github.status_code == 202
    assert post(client, PIPELINE_DONE.read_bytes(), shared_id)[0] == 202
    assert queued(redis_conn) == 2


def test_the_worker_dispatches_the_stored_payload_as_a_semaphore_event(
    client: FlaskClient, redis_conn: redis.Redis, recorded: list[Event]
) -> None:
    body = PIPELINE_DONE.read_bytes()
    webhook_id = str(uuid.uuid4())
    assert post(client, body, webhook_id)[0] == 202
    run_jobs(redis_conn)
    [event] = recorded
    assert (event.name, event.delivery_id) == ("semaphore", webhook_id)
    assert event.payload == json.loads(body)
    assert event.payload["revision"]["pull_request"]["head_sha"] == (
        "6fd84f4c2aecae7b1e6ce516b634c220d4a3e3e4"
    )
    # Done only after the job succeeded; the body is dropped, the id stays a duplicate.
    assert deliveries.state(redis_conn, "semaphore", webhook_id) is DeliveryState.DONE
    assert deliveries.payload(redis_conn, "semaphore", webhook_id) is None
    assert post(client, body, webhook_id)[0] == 200
    assert queued(redis_conn) == 0


def test_a_pipeline_of_a_repository_mlgate_is_not_installed_on_is_logged_and_done(
    client: FlaskClient, redis_conn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.handlers.semaphore_notifications")
    webhook_id = str(uuid.uuid4())
    assert post(client, PIPELINE_DONE.read_bytes(), webhook_id)[0] == 202
    run_jobs(redis_conn)
    assert "semaphore: pipeline of a repository mlgate is not installed on" in caplog.text
    assert deliveries.state(redis_conn, "semaphore", webhook_id) is DeliveryState.DONE


def test_a_repository_outside_the_allowlist_is_not_dispatched(
    client: FlaskClient,
    redis_conn: redis.Redis,
    recorded: list[Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLGATE_REPO_ALLOWLIST", "renderedtext/*,!renderedtext/notifications")
    webhook_id = str(uuid.uuid4())
    assert post(client, PIPELINE_DONE.read_bytes(), webhook_id)[0] == 202
    run_jobs(redis_conn)
    assert recorded == []
    assert deliveries.state(redis_conn, "semaphore", webhook_id) is DeliveryState.DONE


def test_a_webhook_whose_job_failed_for_good_is_accepted_again(
    client: FlaskClient, redis_conn: redis.Redis
) -> None:
    body = PIPELINE_DONE.read_bytes()
    webhook_id = str(uuid.uuid4())
    assert post(client, body, webhook_id)[0] == 202
    redis_conn.delete(deliveries.payload_key("semaphore", webhook_id))  # the job cannot run
    run_jobs(redis_conn)
    # MLGATE_RETRY_DELAYS=0,0: the first attempt and two retries all failed.
    assert deliveries.state(redis_conn, "semaphore", webhook_id) is DeliveryState.FAILED
    assert post(client, body, webhook_id)[0] == 202
    assert queued(redis_conn) == 1


def test_without_a_configured_secret_the_endpoint_is_404(
    env: dict[str, str], redis_conn: redis.Redis
) -> None:
    body = PIPELINE_DONE.read_bytes()
    with create_app(env).test_client() as client:
        status, text = post(client, body)
    assert (status, text) == (
        404,
        "not configured: set SEMAPHORE_WEBHOOK_SECRET to accept Semaphore webhooks\n",
    )
    assert queued(redis_conn) == 0


def test_missing_signature_is_401(client: FlaskClient, redis_conn: redis.Redis) -> None:
    response = client.post(
        "/webhooks/semaphore",
        data=PIPELINE_DONE.read_bytes(),
        headers={"X-Semaphore-Webhook-Id": str(uuid.uuid4())},
    )
    assert (response.status_code, response.get_data(as_text=True)) == (
        401,
        "missing signature: no X-Semaphore-Signature-256 header\n",
    )
    assert queued(redis_conn) == 0


@pytest.mark.parametrize("secret", ["not-the-secret", SECRET])
def test_a_signature_with_another_secret_is_401(
    client: FlaskClient, redis_conn: redis.Redis, secret: str
) -> None:
    body = PIPELINE_DONE.read_bytes()
    # SECRET is GitHub's: one source's secret never signs for the other.
    forged = semaphore_headers(body, secret=secret)
    response = client.post("/webhooks/semaphore", data=body, headers=forged)
    assert (response.status_code, response.get_data(as_text=True)) == (
        401,
        "bad signature: X-Semaphore-Signature-256 does not match the body\n",
    )
    assert queued(redis_conn) == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_is_400(client: FlaskClient, body: bytes) -> None:
    assert post(client, body) == (400, "malformed payload: the body is not a JSON object\n")


def test_a_missing_webhook_id_is_400(client: FlaskClient) -> None:
    body = PIPELINE_DONE.read_bytes()
    headers = semaphore_headers(body)
    del headers["X-Semaphore-Webhook-Id"]
    response = client.post("/webhooks/semaphore", data=body, headers=headers)
    assert (response.status_code, response.get_data(as_text=True)) == (
        400,
        "missing header: X-Semaphore-Webhook-Id\n",
    )


def test_a_webhook_id_that_is_not_a_uuid_is_400(client: FlaskClient) -> None:
    status, text = post(client, PIPELINE_DONE.read_bytes(), webhook_id="../../etc:passwd")
    assert (status, text) == (400, "malformed header: X-Semaphore-Webhook-Id must be a UUID\n")


def test_body_over_25_mib_is_413(client: FlaskClient, redis_conn: redis.Redis) -> None:
    status, text = post(client, b" " * (BODY_LIMIT + 1))
    assert (status, text) == (413, f"payload too large: over {BODY_LIMIT} bytes\n")
    assert queued(redis_conn) == 0


def test_a_chunked_body_over_25_mib_is_413_not_a_bad_signature(
    app: Flask, redis_conn: redis.Redis
) -> None:
    # No Content-Length (chunked over real HTTP): the limit applies while the body is read.
    def chunks() -> Iterator[bytes]:
        for _ in range(BODY_LIMIT // 65536 + 1):
            yield b" " * 65536

    with serve(app) as url:
        response = requests.post(
            f"{url}/webhooks/semaphore",
            data=chunks(),
            headers={"X-Semaphore-Signature-256": "0" * 64, "X-Semaphore-Webhook-Id": "c-1"},
            timeout=60,
        )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert (response.status_code, response.text) == (
        413,
        f"payload too large: over {BODY_LIMIT} bytes\n",
    )
    assert queued(redis_conn) == 0


def test_redis_down_is_503(env: dict[str, str]) -> None:
    stopped = EmbeddedRedis().start()
    app = create_app(env | {"REDIS_URL": stopped.url, "SEMAPHORE_WEBHOOK_SECRET": SEMAPHORE_SECRET})
    stopped.stop()
    with app.test_client() as client:
        status, text = post(client, PIPELINE_DONE.read_bytes())
    assert status == 503
    assert text.startswith("redis unavailable:") and text.endswith("; redeliver later\n")
