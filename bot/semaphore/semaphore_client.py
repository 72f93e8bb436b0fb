"""The Semaphore API v1alpha client: run workflows, describe pipelines, trigger promotions."""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from bot import logs
from bot.errors import (
    SemaphoreError,
    SemaphoreNotFound,
    SemaphoreRefused,
    SemaphoreRetriesExhausted,
    SemaphoreUnauthorized,
    SettingsError,
)
from bot.http_transport import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_TRIES,
    TIMEOUT,
    Call,
    Failure,
    FailureKind,
    HttpTransport,
    RetryLimits,
    RetryPolicy,
)

logger = logging.getLogger("bot.semaphore.semaphore_client")

JSONDict = dict[str, Any]

# "The root of the API can be found here: https://<organization-url>.semaphoreci.com/api/v1alpha"
# (docs.semaphore.io/reference/api).
API_PATH = "/api/v1alpha"
# Same page: "All API requests must set the User-Agent to `SemaphoreCI v2.0 Client`".
USER_AGENT = "SemaphoreCI v2.0 Client"
# Unset protobuf timestamps come out as the Unix epoch: "1970-01-01 00:00:00.000000Z" in the
# API, "1970-01-01T00:00:00Z" in notifications (fixtures/semaphore/SOURCE.md).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# POST /promotions turns every body field into a promotion parameter except these, which the
# API reads itself (public-api gofer_client/request_formatter.ex, form_env_vars/1).
RESERVED_PROMOTION_FIELDS = frozenset(
    {"switch_id", "name", "user_id", "override", "request_token", "pipeline_id"}
)
NOT_FOUND_HINT = (
    "the id is wrong, or (the usual cause) the service account whose token is "
    "SEMAPHORE_API_TOKEN is not a member of this Semaphore project: add it on the "
    "project's People page with a role that may run workflows and promotions "
    "(Semaphore answers 404, not 403, when a permission is missing)"
)
UNAUTHORIZED_HINT = (
    "SEMAPHORE_API_TOKEN is wrong, or its service account's token was reset or deleted "
    "(Organization > People > the service account > Regenerate Token gives a new one)"
)


@dataclass(frozen=True)
class RunWorkflowResult:
    """What POST /plumber-workflows answers: the new workflow and its initial pipeline."""

    workflow_id: str
    pipeline_id: str
    # Not in the documented answer (only workflow_id and pipeline_id); kept if it ever is.
    hook_id: str | None = None


@dataclass(frozen=True)
class Job:
    """One job of a block; `status` and `result` lowercased (the API sends "FINISHED")."""

    name: str
    id: str
    status: str
    result: str | None


@dataclass(frozen=True)
class Block:
    """One block of a detailed pipeline; `result` is None until the block is done."""

    name: str
    state: str
    result: str | None
    result_reason: str | None
    jobs: tuple[Job, ...]


@dataclass(frozen=True)
class Pipeline:
    """A pipeline as GET /pipelines/:id describes it; unset times (1970) are None."""

    id: str
    workflow_id: str
    state: str
    result: str | None
    result_reason: str | None
    name: str
    yaml_file_name: str
    working_directory: str
    commit_sha: str | None
    branch_name: str | None
    project_id: str | None
    error_description: str
    created_at: datetime | None
    done_at: datetime | None
    blocks: tuple[Block, ...] = ()

    @property
    def done(self) -> bool:
        """True once the pipeline finished (passed, failed, stopped or canceled)."""
        return self.state == "done"

    @property
    def pipeline_file(self) -> str:
        """The YAML path in the repository, e.g. `.semaphore/evaluate.yml`."""
        directory = self.working_directory.strip("/")
        return f"{directory}/{self.yaml_file_name}" if directory else self.yaml_file_name

    def failed_jobs(self) -> list[str]:
        """Names of the jobs that failed (needs `detailed=True`)."""
        return [job.name for block in self.blocks for job in block.jobs if job.result == "failed"]


def parse_time(value: object) -> datetime | None:
    """A Semaphore timestamp in any of its formats as an aware datetime; unset (1970) is None.

    The API docs list three: "2019-10-14 12:11:47.824128Z", `{"seconds", "nanos"}` and Unix
    seconds as a string; notifications send ISO 8601 ("2020-04-08T12:54:46Z").
    """
    moment: datetime | None
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        moment = datetime.fromtimestamp(seconds, UTC)
    elif isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise ValueError(f"not a Semaphore timestamp: {value!r}")
    return None if moment <= EPOCH else moment


def branch_reference(branch: str) -> str:
    """The `reference` that runs a workflow on a branch."""
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def pull_request_reference(number: int) -> str:
    """The `reference` that runs a workflow on a pull request (docs: `refs/pull/123`)."""
    return f"refs/pull/{int(number)}"


class SemaphoreClient:
    """A requests.Session against one Semaphore organization's API, as one service account."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_tries: int = MAX_TRIES,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        if not api_url:
            raise SettingsError(
                "SEMAPHORE_API_URL is not set: set it to https://<org>.semaphoreci.com/api/v1alpha"
            )
        if not token:
            raise SettingsError(
                "SEMAPHORE_API_TOKEN is not set: create a service account (Organization > "
                "People > Create Service Account), add it to the project and pass its token"
            )
        logs.register_secret(token)
        parts = urlsplit(api_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"SEMAPHORE_API_URL must be an http(s) URL, not {api_url!r}")
        # The organization URL alone is the usual slip: the API lives under /api/v1alpha.
        path = parts.path if parts.path not in ("", "/") else API_PATH
        self.api_url = f"{parts.scheme}://{parts.netloc}{path}"
        self._headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": f"Token {token}",
        }
        limits = RetryLimits(max_tries, backoff_base, backoff_cap, timeout=timeout)
        self._transport = HttpTransport(
            "semaphore", logger, session=session, sleep=sleep, limits=limits
        )

    # -- links -------------------------------------------------------------------------------

    @property
    def web_url(self) -> str | None:
        """The organization's web address (`https://myorg.semaphoreci.com`), if the API URL
        has the documented shape."""
        if not self.api_url.endswith(API_PATH):
            return None
        return self.api_url[: -len(API_PATH)]

    def workflow_url(self, workflow_id: str) -> str | None:
        """The workflow's page, for a check run's details link."""
        web = self.web_url
        return f"{web}/workflows/{quote(workflow_id, safe='')}" if web else None

    def pipeline_url(self, workflow_id: str, pipeline_id: str) -> str | None:
        """The page of one pipeline of a workflow (a promotion's, say)."""
        workflow = self.workflow_url(workflow_id)
        return f"{workflow}?pipeline_id={quote(pipeline_id, safe='')}" if workflow else None

    # -- endpoints ---------------------------------------------------------------------------

    def run_workflow(
        self,
        project_id: str,
        reference: str,
        commit_sha: str | None,
        pipeline_file: str,
        parameters: Mapping[str, str] | None = None,
    ) -> RunWorkflowResult:
        """Start a workflow (POST /plumber-workflows); never resent once it may have arrived.

        `reference` is `refs/heads/<branch>`, `refs/tags/<tag>` or `refs/pull/<number>`;
        `parameters` reach every job of the initial pipeline as environment variables.
        """
        body: JSONDict = {
            "project_id": project_id,
            "reference": reference,
            "pipeline_file": pipeline_file,
            "parameters": _string_map(parameters or {}, "parameters"),
        }
        if commit_sha:
            body["commit_sha"] = commit_sha
        path = "/plumber-workflows"
        answer = self._request("POST", path, json=body, idempotent=False).json()
        if not isinstance(answer, dict):
            raise SemaphoreError("POST", path, 200, f"expected an object, got {answer!r:.200}")
        workflow_id, pipeline_id = answer.get("workflow_id"), answer.get("pipeline_id")
        if not isinstance(workflow_id, str) or not isinstance(pipeline_id, str):
            raise SemaphoreError(
                "POST", path, 200, f"no workflow_id / pipeline_id in {jsonlib.dumps(answer):.200}"
            )
        hook_id = answer.get("hook_id")
        return RunWorkflowResult(workflow_id, pipeline_id, hook_id if hook_id else None)

    def describe_pipeline(self, pipeline_id: str, detailed: bool = False) -> Pipeline:
        """GET /pipelines/:id; `detailed` adds blocks and jobs (the docs call it expensive)."""
        path = f"/pipelines/{quote(pipeline_id, safe='')}"
        params = {"detailed": "true"} if detailed else None
        answer = self._request("GET", path, params=params, idempotent=True).json()
        if not isinstance(answer, dict) or not isinstance(answer.get("pipeline"), dict):
            raise SemaphoreError("GET", path, 200, f"no pipeline in {jsonlib.dumps(answer):.200}")
        return _pipeline(answer["pipeline"], answer.get("blocks") or [], pipeline_id)

    def trigger_promotion(
        self,
        pipeline_id: str,
        name: str,
        request_token: str,
        parameters: Mapping[str, str] | None = None,
        *,
        override: bool = False,
    ) -> None:
        """Trigger the promotion `name` of a pipeline (POST /promotions).

        Semaphore de-duplicates by `request_token`: give the same token for the same intent
        (e.g. one per approved sha), and a retried call is not a second deployment.
        `parameters` fill the promotion's `parameters.env_vars`; `override` promotes a pipeline
        that failed or is still running.
        """
        if not request_token:
            raise ValueError("request_token is required: it makes the promotion idempotent")
        values = _string_map(parameters or {}, "parameters")
        clash = sorted(RESERVED_PROMOTION_FIELDS & values.keys())
        if clash:
            raise ValueError(
                f"promotion parameter(s) {', '.join(clash)} would be read by Semaphore as its "
                "own fields, not passed to the promotion: rename them"
            )
        body: JSONDict = {**values, "pipeline_id": pipeline_id, "name": name}
        body["request_token"] = request_token
        if override:
            body["override"] = True
        # The answer is a bare JSON string, "Promotion successfully triggered." (public-api
        # gofer_client/response_fromatter.ex); nothing in it is worth keeping.
        self._request("POST", "/promotions", json=body, idempotent=True)

    # -- transport ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one request with bounded retries; raise a SemaphoreError for what is left."""
        call = Call(
            method,
            self.api_url + path,
            path,
            idempotent,
            json=json,
            params=params,
            headers=self._headers,
        )
        return self._transport.send(call, _SEMAPHORE_RULES)


# The transport's strict defaults are Semaphore's retry rules. Semaphore documents no
# idempotency for POST /plumber-workflows, and the API gives every run request a fresh
# request_token (public-api wf_request_formatter.ex: `request_token: UUID.uuid4()`), so
# sending it twice starts two workflows: two training runs, two notifications. It is
# therefore resent only when it provably never reached Semaphore (connection refused, DNS
# failure, connect timeout). After a read timeout, a dropped connection or a 5xx the
# workflow may exist already: the client raises, saying so, and the job's owner decides (a
# user can /retrain again). POST /promotions carries our request_token, which Semaphore
# de-duplicates, so it is retried like a GET.
class _SemaphoreRules(RetryPolicy):
    """Semaphore's rules on the transport: the strict defaults, and its own error messages."""

    def error(self, failure: Failure) -> Exception:
        call, response = failure.call, failure.response
        method, path, status = call.method, call.path, failure.status
        detail = failure.reason if response is None else _describe(response)
        if failure.kind is FailureKind.NOT_RESENT and response is None:
            return SemaphoreError(
                method,
                path,
                status,
                f"{detail}; not retried, because Semaphore may have acted on it (a "
                "workflow may have started): check the project before running again",
            )
        if failure.kind is FailureKind.NOT_RESENT:
            return SemaphoreError(
                method,
                path,
                status,
                f"{detail}; not retried, because a workflow may have started anyway: "
                "check the project's workflows before running again",
            )
        if failure.kind is FailureKind.REFUSED:
            return _error_for(method, path, status, detail)
        # Only EXHAUSTED is left: without a retry_after rule, no wait is ever too long.
        return SemaphoreRetriesExhausted(
            method, path, status, f"{detail} (gave up after {failure.attempts} tries)"
        )


_SEMAPHORE_RULES = _SemaphoreRules()


def _string_map(values: Mapping[str, str], what: str) -> dict[str, str]:
    # Semaphore turns these into environment variables, whose values are protobuf strings.
    result: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise TypeError(f"{what} must map non-empty names to strings, not {name!r}: {value!r}")
        result[name] = value
    return result


def _describe(response: requests.Response) -> str:
    """Semaphore's error: a JSON string, `{"code", "message"}`, or plain text ("Not Found")."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return logs.redact(text[:300]) or response.reason or "no body"
    if isinstance(body, str):
        return logs.redact(body[:300]) or response.reason or "no message"
    if isinstance(body, dict) and body.get("message"):
        code = f"{body['code']}: " if body.get("code") else ""
        return logs.redact(f"{code}{body['message']}"[:300])
    return logs.redact(jsonlib.dumps(body)[:300])


def _error_for(method: str, path: str, status: int, message: str) -> SemaphoreError:
    if status == 401:
        return SemaphoreUnauthorized(method, path, status, f"{message}; {UNAUTHORIZED_HINT}")
    if status == 404:
        return SemaphoreNotFound(method, path, status, f"{message}; {NOT_FOUND_HINT}")
    if status == 409:
        return SemaphoreRefused(method, path, status, f"{message}; try again later")
    return SemaphoreError(method, path, status, message)


def _lower(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _pipeline(data: Mapping[str, Any], blocks: list[Any], pipeline_id: str) -> Pipeline:
    # The API drops `result` and `result_reason` while the pipeline is not done
    # (pipelines_client/response_formatter.ex, remove_result_if_not_done/1).
    return Pipeline(
        id=_text(data.get("ppl_id")) or pipeline_id,
        workflow_id=str(data.get("wf_id") or ""),
        state=_lower(data.get("state")) or "",
        result=_lower(data.get("result")),
        result_reason=_lower(data.get("result_reason")),
        name=str(data.get("name") or ""),
        yaml_file_name=str(data.get("yaml_file_name") or ""),
        working_directory=str(data.get("working_directory") or ""),
        commit_sha=_text(data.get("commit_sha")),
        branch_name=_text(data.get("branch_name")),
        project_id=_text(data.get("project_id")),
        error_description=str(data.get("error_description") or ""),
        created_at=parse_time(data.get("created_at")),
        done_at=parse_time(data.get("done_at")),
        blocks=tuple(_block(b) for b in blocks if isinstance(b, Mapping)),
    )


def _block(data: Mapping[str, Any]) -> Block:
    jobs = data.get("jobs") or []
    return Block(
        name=str(data.get("name") or ""),
        state=_lower(data.get("state")) or "",
        result=_lower(data.get("result")),
        result_reason=_lower(data.get("result_reason")),
        jobs=tuple(
            # Detailed answers name it `job_id` ("status": "FINISHED", "result": "PASSED");
            # notifications name it `id`, in lower case.
            Job(
                name=str(job.get("name") or ""),
                id=str(job.get("job_id") or job.get("id") or ""),
                status=_lower(job.get("status")) or "",
                result=_lower(job.get("result")),
            )
            for job in jobs
            if isinstance(job, Mapping)
        ),
    )
