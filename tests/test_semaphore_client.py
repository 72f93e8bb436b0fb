"""The Semaphore API client against the local Semaphore emulator, over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from bot.core import signatures
from bot.emulator import SemaphoreEmulator
from bot.emulator.semaphore_emulator import PROMOTION_TRIGGERED, sign, webhook_headers
from bot.errors import (
    SemaphoreError,
    SemaphoreNotFound,
    SemaphoreRefused,
    SemaphoreRetriesExhausted,
    SemaphoreUnauthorized,
    SettingsError,
)
from bot.loopback import serve
from bot.semaphore.semaphore_client import (
    Pipeline,
    SemaphoreClient,
    parse_time,
    pull_request_reference,
)
from tests.support import FIXTURES

TOKEN = "sem-service-account-token-0123456789"
PROJECT = "7379341d-a22a-475f-b0c9-4553b06a926c"
HEAD = "6fd84f4c2aecae7b1e6ce516b634c220d4a3e3e4"
PIPELINE_FILE = ".semaphore/evaluate.yml"
# Long enough to tell "Semaphore got the request but answered late" from a fast answer,
# short enough to keep the suite fast (the emulator's stop() cuts the rest of the delay);
# 0.3 s was too short for a fast answer on a loaded 2-core machine.
READ_TIMEOUT = 1.5
LATE_ANSWER = 5.0


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / "semaphore" / name).read_text())


def keys(value: Any) -> Any:
    """The nested key structure of a JSON value: what "the same field set" compares."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


@pytest.fixture
def emu() -> Iterator[SemaphoreEmulator]:
    with SemaphoreEmulator(token=TOKEN, org_url="https://myorg.semaphoreci.com") as emulator:
        emulator.add_project(PROJECT, name="notifications", repository="octo/ml")
        yield emulator


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(
    emu: SemaphoreEmulator, session: requests.Session, sleeps: list[float]
) -> SemaphoreClient:
    return SemaphoreClient(
        emu.url, TOKEN, session=session, sleep=sleeps.append, timeout=(2.0, READ_TIMEOUT)
    )


def start(client: SemaphoreClient, **parameters: str) -> str:
    result = client.run_workflow(PROJECT, "refs/heads/main", HEAD, PIPELINE_FILE, parameters)
    return result.pipeline_id


def count(emu: SemaphoreEmulator, method: str, suffix: str) -> int:
    return sum(1 for r in emu.requests if r.method == method and r.path.endswith(suffix))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the three endpoints ----------------------------------------------------------------------


def test_run_workflow_starts_a_running_pipeline_with_the_parameters(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    result = client.run_workflow(
        PROJECT,
        pull_request_reference(3),
        HEAD,
        PIPELINE_FILE,
        {"MLGATE_RUN_ID": "run-1", "MODEL": "xgboost"},
    )

    [workflow] = emu.workflows
    assert (result.workflow_id, result.pipeline_id) == (workflow.id, workflow.initial_pipeline_id)
    assert result.hook_id is None  # the documented answer has only the two ids
    assert workflow.reference == "refs/pull/3"
    assert workflow.commit_sha == HEAD
    assert workflow.pipeline_file == PIPELINE_FILE
    assert workflow.parameters == {"MLGATE_RUN_ID": "run-1", "MODEL": "xgboost"}
    [request] = emu.requests
    assert request.auth == "token"
    assert request.body == {
        "project_id": PROJECT,
        "reference": "refs/pull/3",
        "commit_sha": HEAD,
        "pipeline_file": PIPELINE_FILE,
        "parameters": {"MLGATE_RUN_ID": "run-1", "MODEL": "xgboost"},
    }


def test_running_pipeline_has_no_result_and_its_1970_times_are_none(
    client: SemaphoreClient,
) -> None:
    pipeline = client.describe_pipeline(start(client))

    assert pipeline.state == "running" and not pipeline.done
    assert pipeline.result is None and pipeline.result_reason is None
    assert pipeline.done_at is None  # "1970-01-01 00:00:00.000000Z" in the answer
    assert pipeline.created_at is not None and pipeline.created_at.tzinfo is not None
    assert pipeline.commit_sha == HEAD
    assert pipeline.branch_name == "main"
    assert pipeline.project_id == PROJECT
    assert pipeline.pipeline_file == PIPELINE_FILE
    assert pipeline.blocks == ()


def test_finished_pipeline_reports_result_and_done_time(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id, "passed")

    pipeline = client.describe_pipeline(pipeline_id)

    assert pipeline.done
    assert (pipeline.result, pipeline.result_reason) == ("passed", "test")
    assert pipeline.done_at is not None and pipeline.created_at is not None
    assert pipeline.done_at >= pipeline.created_at
    assert pipeline.workflow_id == emu.workflows[0].id


def test_detailed_pipeline_lists_blocks_jobs_and_failed_jobs(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    emu.blocks = {"Train": ["train"], "Evaluate": ["evaluate", "gates"]}
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id, "failed", failed_jobs=["gates"])

    pipeline = client.describe_pipeline(pipeline_id, detailed=True)

    assert [r.query for r in emu.requests if r.method == "GET"] == [{"detailed": "true"}]
    assert pipeline.result == "failed"
    assert [(b.name, b.result) for b in pipeline.blocks] == [
        ("Train", "passed"),
        ("Evaluate", "failed"),
    ]
    # The API upper-cases job enums ("FINISHED", "FAILED"); the client lower-cases them.
    assert [(j.name, j.status, j.result) for j in pipeline.blocks[1].jobs] == [
        ("evaluate", "finished", "passed"),
        ("gates", "finished", "failed"),
    ]
    assert all(job.id for block in pipeline.blocks for job in block.jobs)
    assert pipeline.failed_jobs() == ["gates"]


def test_client_reads_the_documented_describe_answers(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    documented = fixture("api-pipeline-describe-response.json")
    emu.inject_fault("GET", r"/pipelines/p1$", 200, body=documented)

    pipeline = client.describe_pipeline("p1")

    assert pipeline == Pipeline(
        id="6d7c2931-738b-4f0f-b007-8b52c139d18c",
        workflow_id="acb37482-c8c1-4714-9e69-7c8674e6f3e0",
        state="done",
        result="passed",
        result_reason="test",
        name="Pipeline 10",
        yaml_file_name="pipeline_manual_WFnumber.yml",
        working_directory=".semaphore",
        commit_sha="1a4f3b120d728e6ff20de0d70c589a7a1ccf6eeb",
        branch_name="master",
        project_id="afccead6-6aa7-41b4-8a91-97bc490d1683",
        error_description="",
        created_at=datetime(2025, 4, 17, 19, 6, 4, 782051, tzinfo=UTC),
        done_at=datetime(2025, 4, 17, 19, 6, 18, 900644, tzinfo=UTC),
    )

    # The documented detailed example is abridged: no ppl_id, so the asked id stands in.
    emu.inject_fault(
        "GET", r"/pipelines/p2$", 200, body=fixture("api-pipeline-describe-detailed-response.json")
    )
    detailed = client.describe_pipeline("p2", detailed=True)
    assert detailed.id == "p2"
    assert detailed.commit_sha is None
    [block] = detailed.blocks
    assert (block.name, block.result) == ("RSpec", "passed")
    assert [(j.name, j.status, j.result, j.id) for j in block.jobs] == [
        ("Push results - 2/11", "finished", "passed", "31094182-03bf-4e39-acfe-ed1058d7eb6c")
    ]


def test_unset_timestamps_in_every_semaphore_format_are_none() -> None:
    assert parse_time("1970-01-01 00:00:00.000000Z") is None  # API
    assert parse_time("1970-01-01T00:00:00Z") is None  # notifications
    assert parse_time({"seconds": 0, "nanos": 0}) is None
    assert parse_time("") is None and parse_time(None) is None
    assert parse_time("2020-04-08T12:54:46Z") == datetime(2020, 4, 8, 12, 54, 46, tzinfo=UTC)
    assert parse_time({"seconds": 1571063401, "nanos": 559492000}) == datetime(
        2019, 10, 14, 14, 30, 1, 559492, tzinfo=UTC
    )
    assert parse_time("1571083003") == datetime(2019, 10, 14, 19, 56, 43, tzinfo=UTC)


def test_promotion_with_the_same_request_token_is_recorded_once(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id)

    client.trigger_promotion(pipeline_id, "Deploy to production", "deploy-abc123", {"ENV": "prod"})
    client.trigger_promotion(pipeline_id, "Deploy to production", "deploy-abc123", {"ENV": "prod"})

    [promotion] = emu.promotions
    assert (promotion.pipeline_id, promotion.name) == (pipeline_id, "Deploy to production")
    assert promotion.request_token == "deploy-abc123"
    assert promotion.parameters == {"ENV": "prod"}
    assert promotion.override is False
    # Promotion parameters travel as top-level fields beside pipeline_id and name.
    assert emu.requests[-1].body == {
        "ENV": "prod",
        "pipeline_id": pipeline_id,
        "name": "Deploy to production",
        "request_token": "deploy-abc123",
    }
    client.trigger_promotion(pipeline_id, "Deploy to production", "deploy-def456")
    assert len(emu.promotions) == 2


def test_promotion_answer_is_a_bare_json_string(
    emu: SemaphoreEmulator, client: SemaphoreClient, session: requests.Session
) -> None:
    pipeline_id = start(client)
    # The docs' own example posts a form, not JSON.
    response = session.post(
        emu.url + "/promotions",
        data={"name": "Deploy", "pipeline_id": pipeline_id, "override": "true"},
        headers={"Authorization": f"Token {TOKEN}"},
    )

    assert response.status_code == 200
    assert response.json() == PROMOTION_TRIGGERED
    [promotion] = emu.promotions
    assert promotion.override is True and promotion.parameters == {}


def test_promotion_parameter_named_like_a_semaphore_field_is_refused(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    with pytest.raises(ValueError, match="name"):
        client.trigger_promotion("p", "Deploy", "token-1", {"name": "x"})
    with pytest.raises(ValueError, match="request_token"):
        client.trigger_promotion("p", "Deploy", "")
    with pytest.raises(TypeError):
        client.trigger_promotion("p", "Deploy", "token-1", {"EPOCHS": 5})  # type: ignore[dict-item]
    assert emu.requests == []


# -- retries ----------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_succeeds(
    emu: SemaphoreEmulator, client: SemaphoreClient, sleeps: list[float]
) -> None:
    pipeline_id = start(client)
    emu.inject_fault("GET", "/pipelines/", 502, times=2)

    assert client.describe_pipeline(pipeline_id).state == "running"

    assert [r.status for r in emu.requests if r.method == "GET"] == [502, 502, 200]
    assert sleeps == [0.5, 1.0]


def test_5xx_forever_raises_after_the_bounded_tries(
    emu: SemaphoreEmulator, client: SemaphoreClient, sleeps: list[float]
) -> None:
    emu.inject_fault("GET", "/pipelines/", 500, times=100)

    with pytest.raises(SemaphoreRetriesExhausted) as caught:
        client.describe_pipeline("any")

    assert caught.value.status == 500
    assert "Internal error" in str(caught.value) and "4 tries" in str(caught.value)
    assert count(emu, "GET", "/pipelines/any") == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_promotion_is_retried_after_a_read_timeout_without_a_second_deployment(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id)
    emu.inject_delay("POST", "/promotions$", LATE_ANSWER)

    client.trigger_promotion(pipeline_id, "Deploy", "deploy-1")

    assert count(emu, "POST", "/promotions") == 2
    assert len(emu.promotions) == 1


def test_run_workflow_is_not_resent_after_a_read_timeout(
    emu: SemaphoreEmulator, client: SemaphoreClient, sleeps: list[float]
) -> None:
    emu.inject_delay("POST", "/plumber-workflows$", LATE_ANSWER)

    with pytest.raises(SemaphoreError) as caught:
        start(client)

    assert not isinstance(caught.value, SemaphoreRetriesExhausted)
    assert "not retried" in str(caught.value) and "workflow may have started" in str(caught.value)
    # Semaphore did start it: a second POST would have started another.
    assert len(emu.workflows) == 1
    assert count(emu, "POST", "/plumber-workflows") == 1
    assert sleeps == []


def test_run_workflow_is_not_retried_after_a_5xx(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    emu.inject_fault("POST", "/plumber-workflows$", 502)

    with pytest.raises(SemaphoreError, match="check the project's workflows") as caught:
        start(client)

    assert caught.value.status == 502
    assert count(emu, "POST", "/plumber-workflows") == 1


def test_requests_that_never_connected_are_retried_even_run_workflow(
    session: requests.Session, sleeps: list[float]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/v1alpha"
    client = SemaphoreClient(url, TOKEN, session=session, sleep=sleeps.append, max_tries=3)

    with pytest.raises(SemaphoreRetriesExhausted, match="ConnectionError") as caught:
        start(client)

    assert caught.value.status == 0
    assert "gave no answer" in str(caught.value)
    assert sleeps == [0.5, 1.0]


# -- errors -----------------------------------------------------------------------------------


def test_404_says_the_service_account_is_probably_not_in_the_project(
    client: SemaphoreClient, sleeps: list[float]
) -> None:
    with pytest.raises(SemaphoreNotFound) as caught:
        client.run_workflow("not-my-project", "refs/heads/main", HEAD, PIPELINE_FILE, {})

    message = str(caught.value)
    assert "404" in message and "POST /plumber-workflows" in message
    assert "service account" in message and "not a member of this Semaphore project" in message
    with pytest.raises(SemaphoreNotFound, match="service account"):
        client.describe_pipeline("00000000-0000-0000-0000-000000000000")
    assert sleeps == []


def test_401_says_the_token_is_wrong(emu: SemaphoreEmulator, session: requests.Session) -> None:
    client = SemaphoreClient(emu.url, "wrong-token-value", session=session)

    with pytest.raises(SemaphoreUnauthorized, match="SEMAPHORE_API_TOKEN is wrong"):
        client.describe_pipeline("p")

    assert emu.requests[-1].auth == "invalid"


def test_400_carries_semaphores_own_message(client: SemaphoreClient) -> None:
    with pytest.raises(SemaphoreError, match="Missing required parameter reference") as caught:
        client.run_workflow(PROJECT, "", HEAD, PIPELINE_FILE, {})

    assert caught.value.status == 400


def test_refused_promotion_raises_semaphore_refused(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    # trigger_test.exs: Gofer's REFUSED becomes 409 {"code", "message"}.
    message = "Too many pending promotions for target 'Deploy' (50/50). Please retry later."
    emu.inject_fault("POST", "/promotions$", 409, body={"code": "REFUSED", "message": message})

    with pytest.raises(SemaphoreRefused, match="50/50"):
        client.trigger_promotion("p", "Deploy", "t-1")


def test_token_never_appears_in_logs_or_errors(
    emu: SemaphoreEmulator,
    client: SemaphoreClient,
    session: requests.Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[SemaphoreError] = []
    pipeline_id = start(client)
    client.describe_pipeline(pipeline_id, detailed=True)
    client.trigger_promotion(pipeline_id, "Deploy", "t-1")
    emu.inject_fault("GET", "/pipelines/", 503, times=4)
    calls: list[Callable[[], Pipeline]] = [
        lambda: client.describe_pipeline(pipeline_id),
        lambda: client.describe_pipeline("unknown"),
        lambda: SemaphoreClient(emu.url, TOKEN + "x", session=session).describe_pipeline("p"),
    ]
    for call in calls:
        with pytest.raises(SemaphoreError) as caught:
            call()
        errors.append(caught.value)

    assert any(r.name == "bot.semaphore.semaphore_client" for r in caplog.records)
    assert "semaphore GET /pipelines/" in caplog.text
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert TOKEN not in logged
    assert [type(e) for e in errors] == [
        SemaphoreRetriesExhausted,
        SemaphoreNotFound,
        SemaphoreUnauthorized,
    ]
    assert all(TOKEN not in f"{e} {e.args} {e.message}" for e in errors)


def test_missing_settings_are_named() -> None:
    with pytest.raises(SettingsError, match="SEMAPHORE_API_TOKEN"):
        SemaphoreClient("https://myorg.semaphoreci.com/api/v1alpha", "")
    with pytest.raises(SettingsError, match="SEMAPHORE_API_URL"):
        SemaphoreClient("", TOKEN)


# -- links ------------------------------------------------------------------------------------


def test_links_point_at_the_organization_host() -> None:
    client = SemaphoreClient("https://myorg.semaphoreci.com/api/v1alpha/", TOKEN)
    assert client.workflow_url("wf-1") == "https://myorg.semaphoreci.com/workflows/wf-1"
    assert (
        client.pipeline_url("wf-1", "ppl-2")
        == "https://myorg.semaphoreci.com/workflows/wf-1?pipeline_id=ppl-2"
    )
    # The organization URL alone is completed with the documented API root.
    bare = SemaphoreClient("https://myorg.semaphoreci.com", TOKEN)
    assert bare.api_url == "https://myorg.semaphoreci.com/api/v1alpha"
    assert SemaphoreClient("https://proxy.example/semaphore", TOKEN).workflow_url("w") is None


def test_workflow_link_opens_a_page_on_the_emulator(
    emu: SemaphoreEmulator, client: SemaphoreClient, session: requests.Session
) -> None:
    start(client)
    url = client.workflow_url(emu.workflows[0].id)
    assert url is not None and url.startswith(emu.base_url)

    page = session.get(url)

    assert page.status_code == 200 and PIPELINE_FILE in page.text


# -- notifications ----------------------------------------------------------------------------


def test_signature_matches_semaphores_test_vector() -> None:
    vector = fixture("webhook-signature-vector.json")

    assert sign(vector["body"], vector["secret"]) == vector["signature"]
    assert sign(vector["body"].encode(), vector["secret"]) == vector["signature"]
    assert signatures.verify([vector["secret"]], vector["body"].encode(), vector["signature"])


def test_branch_payload_has_the_field_set_of_the_documented_payload(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id, "stopped")

    payload = emu.pipeline_done_payload(pipeline_id)

    assert keys(payload) == keys(fixture("pipeline-done-stopped.docs.json"))
    revision = payload["revision"]
    assert revision["reference_type"] == "branch"
    assert revision["reference"] == "refs/heads/main"
    assert revision["branch"]["name"] == "main" and revision["commit_sha"] == HEAD
    assert payload["pipeline"]["result"] == "stopped"
    assert payload["pipeline"]["result_reason"] == "user"
    assert payload["pipeline"]["yaml_file_name"] == "evaluate.yml"
    assert payload["pipeline"]["working_directory"] == ".semaphore"
    assert payload["project"] == {"name": "notifications", "id": PROJECT}
    assert payload["organization"]["name"] == "myorg"
    assert payload["workflow"]["initial_pipeline_id"] == pipeline_id


def test_pull_request_payload_has_the_merge_commit_and_a_string_number(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    result = client.run_workflow(PROJECT, "refs/pull/3", HEAD, PIPELINE_FILE, {})
    emu.finish_pipeline(result.pipeline_id, "failed", failed_jobs=["pytest"])

    payload = emu.pipeline_done_payload(
        result.pipeline_id, pull_request={"number": 3, "head_sha": HEAD, "name": "Better model"}
    )

    real = fixture("pipeline-done-pull-request-failed.zulip.json")
    assert keys(payload) == keys(real)
    revision = payload["revision"]
    assert revision["reference_type"] == "pull_request"
    assert revision["pull_request"]["number"] == "3"
    assert revision["pull_request"]["head_sha"] == HEAD
    assert revision["commit_sha"] != HEAD
    assert revision["reference"] == f"refs/semaphoreci/{revision['commit_sha']}"
    assert revision["branch"] is None and revision["tag"] is None
    assert payload["pipeline"]["stopping_at"] == "1970-01-01T00:00:00Z"
    assert payload["pipeline"]["done_at"] != "1970-01-01T00:00:00Z"
    jobs = {job["name"]: job for block in payload["blocks"] for job in block["jobs"]}
    assert jobs["pytest"]["result"] == "failed" and jobs["pytest"]["status"] == "finished"
    assert parse_time(payload["pipeline"]["done_at"]) is not None
    # A workflow run on refs/pull/N is a pull-request pipeline without being told.
    implied = emu.pipeline_done_payload(result.pipeline_id)["revision"]
    assert implied["reference_type"] == "pull_request"
    assert implied["pull_request"]["number"] == "3"


def test_payload_of_a_running_pipeline_is_refused(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    with pytest.raises(RuntimeError, match="finish_pipeline"):
        emu.pipeline_done_payload(pipeline_id)


def test_describe_answer_has_the_documented_field_set(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    # With a parameter, so that env_vars has an entry as in the example.
    pipeline_id = start(client, MLGATE_RUN_ID="run-1")
    running = emu.pipeline_json(pipeline_id)["pipeline"]
    emu.finish_pipeline(pipeline_id)

    documented = fixture("api-pipeline-describe-response.json")
    assert keys(emu.pipeline_json(pipeline_id)) == keys(documented)
    assert set(documented["pipeline"]) - set(running) == {"result", "result_reason"}
    assert set(fixture("api-workflow-run-response.json")) == {"workflow_id", "pipeline_id"}


def test_deliver_posts_a_signed_notification_with_a_webhook_id(
    emu: SemaphoreEmulator, client: SemaphoreClient
) -> None:
    pipeline_id = start(client)
    emu.finish_pipeline(pipeline_id)
    payload = emu.pipeline_done_payload(pipeline_id)
    received: list[tuple[dict[str, str], bytes]] = []

    def receiver(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"
        }
        received.append((headers, body))
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b""]

    with serve(receiver) as base:
        response = emu.deliver(base + "/webhooks/semaphore", payload, "s3cret", webhook_id="w-1")

    assert response.status_code == 202
    [(headers, body)] = received
    assert json.loads(body) == payload
    assert headers["x-semaphore-webhook-id"] == "w-1"
    assert headers["x-semaphore-signature-256"] == sign(body, "s3cret")
    assert headers["user-agent"] == "Semaphore-Webhook"
    assert set(webhook_headers(body, "")) == {
        "Content-Type",
        "User-Agent",
        "X-Semaphore-Webhook-Id",
    }
