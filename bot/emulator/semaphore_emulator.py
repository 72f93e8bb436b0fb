"""A local Semaphore API (workflows, pipelines, promotions) and its notification payloads."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from requests import Response as HttpResponse
from requests import Session
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from bot.emulator.github_models import JSON, EmulatorError
from bot.loopback import (
    Fault,
    LoopbackServer,
    RecordedRequest,
    RequestApp,
    RequestRule,
    take_rule,
)

logger = logging.getLogger("bot.emulator.semaphore_emulator")

API_PATH = "/api/v1alpha"
DEFAULT_TOKEN = "semaphore-emulator-token"
DEFAULT_ORG_URL = "https://mlgate.semaphoreci.com"
# Default pipeline file of POST /plumber-workflows (docs: "The default value is
# .semaphore/semaphore.yml").
DEFAULT_PIPELINE_FILE = ".semaphore/semaphore.yml"
PIPELINE_RESULTS = ("passed", "failed", "stopped")
# The bare JSON string POST /promotions answers (public-api gofer_client/response_fromatter.ex
# and test/router/promotions/trigger_test.exs).
PROMOTION_TRIGGERED = "Promotion successfully triggered."
# Authorization failures, unknown ids and unknown projects all get this plain-text 404
# (public-api pipelines/authorize.ex: `resp(404, "Not Found")`).
NOT_FOUND = "Not Found"
# Fields of POST /promotions the API reads itself; every other one becomes a parameter
# (gofer_client/request_formatter.ex, form_env_vars/1).
PROMOTION_FIELDS = frozenset(
    {"switch_id", "name", "user_id", "override", "request_token", "pipeline_id"}
)
# TriggeredBy of plumber's workflow proto: HOOK = 0, SCHEDULE = 1, API = 2.
TRIGGERED_BY_API = 2
PAYLOAD_VERSION = "1.0.0"


def sign(body: bytes | str, secret: str) -> str:
    """`X-Semaphore-Signature-256`: lowercase hex HMAC-SHA256 of the raw body, no prefix
    (notifications/workers/webhook/signature.ex)."""
    raw = body.encode() if isinstance(body, str) else body
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def webhook_headers(
    body: bytes | str, secret: str, webhook_id: str | None = None
) -> dict[str, str]:
    """The headers Semaphore's notification worker sends with a webhook (webhook.ex)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Semaphore-Webhook",
        # A fresh UUID per notification; Semaphore's own retries (on timeouts) reuse it.
        "X-Semaphore-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    if secret:
        headers["X-Semaphore-Signature-256"] = sign(body, secret)
    return headers


def _api_time(ts: float | None) -> str:
    # Elixir's DateTime.to_string of a UTC microsecond time; unset is the epoch.
    moment = datetime.fromtimestamp(ts or 0, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%fZ")


def _hook_time(ts: float | None) -> str:
    # DateTime.to_iso8601 of whole seconds; unset is "1970-01-01T00:00:00Z".
    moment = datetime.fromtimestamp(int(ts or 0), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fake_sha(*parts: str) -> str:
    return hashlib.sha1(":".join(parts).encode()).hexdigest()


@dataclass
class EmulatedProject:
    id: str
    name: str
    repository: str  # owner/name

    @property
    def repository_url(self) -> str:
        return f"https://github.com/{self.repository}"


@dataclass
class EmulatedJob:
    id: str
    name: str
    index: int
    status: str = "running"  # lower case; the API's detailed answer upper-cases it
    result: str | None = None


@dataclass
class EmulatedBlock:
    id: str
    name: str
    jobs: list[EmulatedJob]
    state: str = "running"
    result: str | None = None
    result_reason: str | None = None


@dataclass
class EmulatedPipeline:
    id: str
    workflow_id: str
    project_id: str
    name: str
    working_directory: str
    yaml_file_name: str
    commit_sha: str
    branch_name: str
    parameters: dict[str, str]
    created_at: float
    blocks: list[EmulatedBlock]
    state: str = "running"
    result: str | None = None
    result_reason: str | None = None
    done_at: float | None = None
    stopping_at: float | None = None
    error_description: str = ""


@dataclass
class EmulatedWorkflow:
    id: str
    project_id: str
    reference: str
    commit_sha: str
    pipeline_file: str
    parameters: dict[str, str]
    initial_pipeline_id: str
    hook_id: str
    created_at: float


@dataclass(frozen=True)
class EmulatedPromotion:
    pipeline_id: str
    name: str
    request_token: str
    override: bool
    parameters: dict[str, str]
    triggered_at: float
    # The pipeline the promotion started, in the same workflow (it notifies when done).
    promoted_pipeline_id: str = ""


@dataclass
class _Delay(RequestRule):
    seconds: float


class _Answer(Exception):
    """A non-2xx answer shaped like the real API's: a JSON string, or plain text."""

    def __init__(self, status: int, body: Any, *, text: bool = False) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.text = text


def _user_error(message: str) -> _Answer:
    # ToTuple.user_error -> Common.respond: 400 with the message JSON-encoded.
    return _Answer(400, message)


def _not_found() -> _Answer:
    return _Answer(404, NOT_FOUND, text=True)


class SemaphoreEmulator(LoopbackServer):
    """Semaphore's API for the endpoints mlgate calls, served over HTTP on a loopback port."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        org_url: str = DEFAULT_ORG_URL,
        *,
        organization_id: str | None = None,
    ) -> None:
        super().__init__(_Api(self), name="semaphore-emulator")
        self.token = token
        self.org_url = org_url.rstrip("/")
        host = urlsplit(self.org_url).hostname or "mlgate"
        self.organization_name = host.split(".")[0]
        self.organization_id = organization_id or str(uuid.uuid4())
        # Blocks and jobs of every new pipeline, as its YAML would declare them.
        self.blocks: dict[str, list[str]] = {"Evaluate": ["evaluate"]}

        self._lock = threading.RLock()
        self._projects: dict[str, EmulatedProject] = {}
        self._workflows: dict[str, EmulatedWorkflow] = {}
        self._pipelines: dict[str, EmulatedPipeline] = {}
        self._promotions: list[EmulatedPromotion] = []
        self._promotion_tokens: set[str] = set()
        self._delays: list[_Delay] = []

    @property
    def url(self) -> str:
        """The API root, what SEMAPHORE_API_URL points at (ends in /api/v1alpha); the
        organization's web pages live at `base_url`."""
        return self.base_url + API_PATH

    # -- state --------------------------------------------------------------------------------

    def add_project(
        self, project_id: str | None = None, *, name: str = "ml", repository: str = "octo/ml"
    ) -> str:
        """A project the service account may use; other project ids get 404. Returns its id."""
        project = EmulatedProject(project_id or str(uuid.uuid4()), name, repository)
        with self._lock:
            self._projects[project.id] = project
        return project.id

    @property
    def workflows(self) -> list[EmulatedWorkflow]:
        """Workflows started through the API, oldest first."""
        with self._lock:
            return list(self._workflows.values())

    @property
    def promotions(self) -> list[EmulatedPromotion]:
        """Promotions triggered, oldest first; a repeated request_token adds none."""
        with self._lock:
            return list(self._promotions)

    def pipeline(self, pipeline_id: str) -> EmulatedPipeline:
        """The pipeline with this id."""
        with self._lock:
            found = self._pipelines.get(pipeline_id)
        if found is None:
            raise EmulatorError(f"no pipeline {pipeline_id} on the Semaphore emulator")
        return found

    def finish_pipeline(
        self,
        pipeline_id: str,
        result: str = "passed",
        failed_jobs: Iterable[str] = (),
    ) -> None:
        """End a running pipeline: `passed`, `failed` (the named jobs, else the first, fail)
        or `stopped` (by a user). A failed job missing from the blocks is added to the last."""
        if result not in PIPELINE_RESULTS:
            raise ValueError(f"result must be one of {', '.join(PIPELINE_RESULTS)}, not {result!r}")
        failed = list(failed_jobs)
        if failed and result == "passed":
            raise ValueError("a passed pipeline has no failed jobs")
        with self._lock:
            pipeline = self.pipeline(pipeline_id)
            if pipeline.state == "done":
                raise EmulatorError(f"pipeline {pipeline_id} is already done ({pipeline.result})")
            if failed and not pipeline.blocks:
                pipeline.blocks.append(EmulatedBlock(str(uuid.uuid4()), "Block", []))
            jobs = {job.name: job for block in pipeline.blocks for job in block.jobs}
            for name in failed:
                if name not in jobs:
                    last = pipeline.blocks[-1]
                    job = EmulatedJob(str(uuid.uuid4()), name, len(last.jobs))
                    last.jobs.append(job)
                    jobs[name] = job
            if result == "failed" and not failed and jobs:
                failed = [next(iter(jobs))]
            now = time.time()
            # Notifications say "test" for results the jobs decided, "user" for a stop
            # (fixtures: pipeline-done-*.json).
            reason = "user" if result == "stopped" else "test"
            for block in pipeline.blocks:
                for job in block.jobs:
                    job.status = "finished"
                    if job.name in failed:
                        job.result = "failed"
                    else:
                        job.result = "stopped" if result == "stopped" else "passed"
                results = {job.result for job in block.jobs}
                block.state = "done"
                block.result = next((r for r in ("failed", "stopped") if r in results), "passed")
                block.result_reason = reason
            pipeline.state = "done"
            pipeline.result = result
            pipeline.result_reason = reason
            pipeline.done_at = now
            if result == "stopped":
                pipeline.stopping_at = now

    # -- delays -------------------------------------------------------------------------------

    def inject_delay(self, method: str, path_regex: str, seconds: float, *, times: int = 1) -> None:
        """Act on the next `times` matching requests, then wait `seconds` before answering:
        a client's read timeout after the server did the work."""
        with self._lock:
            self._delays.append(
                _Delay(method.upper(), re.compile(path_regex), times, seconds=seconds)
            )

    def _take_delay(self, method: str, path: str) -> float:
        with self._lock:
            delay = take_rule(self._delays, method, path)
        return 0.0 if delay is None else delay.seconds

    # -- API actions (called by _Api under no lock) -------------------------------------------

    def run_workflow(
        self,
        project_id: str,
        reference: str,
        commit_sha: str | None = None,
        pipeline_file: str = ".semaphore/semaphore.yml",
        parameters: Mapping[str, str] | None = None,
    ) -> EmulatedWorkflow:
        """A workflow Semaphore starts by itself (a push to a branch), not through the API."""
        return self._run_workflow(
            project_id, reference, commit_sha, pipeline_file, dict(parameters or {})
        )

    def _run_workflow(
        self,
        project_id: str,
        reference: str,
        commit_sha: str | None,
        pipeline_file: str,
        parameters: dict[str, str],
    ) -> EmulatedWorkflow:
        with self._lock:
            if project_id not in self._projects:
                raise _not_found()
            now = time.time()
            workflow_id, pipeline_id = str(uuid.uuid4()), str(uuid.uuid4())
            # Semaphore resolves the reference's head when no commit is given.
            sha = commit_sha or _fake_sha(project_id, reference, str(now))
            directory, _, yaml_file = pipeline_file.lstrip("/").rpartition("/")
            workflow = EmulatedWorkflow(
                id=workflow_id,
                project_id=project_id,
                reference=reference,
                commit_sha=sha,
                pipeline_file=pipeline_file,
                parameters=dict(parameters),
                initial_pipeline_id=pipeline_id,
                hook_id=str(uuid.uuid4()),
                created_at=now,
            )
            blocks = [
                EmulatedBlock(
                    str(uuid.uuid4()),
                    block_name,
                    [EmulatedJob(str(uuid.uuid4()), job, index) for index, job in enumerate(jobs)],
                )
                for block_name, jobs in self.blocks.items()
            ]
            self._workflows[workflow_id] = workflow
            self._pipelines[pipeline_id] = EmulatedPipeline(
                id=pipeline_id,
                workflow_id=workflow_id,
                project_id=project_id,
                name=yaml_file.rsplit(".", 1)[0].replace("_", " ").capitalize() or "Pipeline",
                working_directory=directory or ".",
                yaml_file_name=yaml_file,
                commit_sha=sha,
                branch_name=_branch_name(reference),
                parameters=dict(parameters),
                created_at=now,
                blocks=blocks,
            )
            return workflow

    def _trigger_promotion(
        self,
        pipeline_id: str,
        name: str,
        request_token: str,
        override: bool,
        parameters: dict[str, str],
    ) -> None:
        with self._lock:
            if pipeline_id not in self._pipelines:
                raise _not_found()
            # Gofer keeps one trigger per request_token: a retry is not a second promotion.
            if request_token in self._promotion_tokens:
                return
            self._promotion_tokens.add(request_token)
            source = self._pipelines[pipeline_id]
            promoted = replace(
                source,
                id=str(uuid.uuid4()),
                name=name,
                yaml_file_name=f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.yml",
                parameters=dict(parameters),
                created_at=time.time(),
                blocks=[
                    EmulatedBlock(
                        str(uuid.uuid4()), "Deploy", [EmulatedJob(str(uuid.uuid4()), "deploy", 0)]
                    )
                ],
                state="running",
                result=None,
                result_reason=None,
                done_at=None,
                stopping_at=None,
            )
            self._pipelines[promoted.id] = promoted
            self._promotions.append(
                EmulatedPromotion(
                    pipeline_id,
                    name,
                    request_token,
                    override,
                    dict(parameters),
                    time.time(),
                    promoted.id,
                )
            )

    # -- API answers --------------------------------------------------------------------------

    def pipeline_json(self, pipeline_id: str, *, detailed: bool = False) -> JSON:
        """What GET /pipelines/:id answers, with the field set of the documented example."""
        with self._lock:
            ppl = self.pipeline(pipeline_id)
            workflow = self._workflows[ppl.workflow_id]
            project = self._projects[ppl.project_id]
            pipeline_file = f"{ppl.working_directory}/{ppl.yaml_file_name}"
            data: JSON = {
                "running_at": _api_time(ppl.created_at),
                "state": ppl.state,
                "branch_id": _uuid_for("branch", project.id, ppl.branch_name),
                "commit_message": "",
                "with_after_task": False,
                "organization_id": self.organization_id,
                "repository_id": _uuid_for("repository", project.id),
                "pending_at": _api_time(ppl.created_at),
                "ppl_id": ppl.id,
                "partially_rerun_by": "",
                "triggerer": {
                    "workflow_rerun_of": "",
                    "wf_triggerer_user_id": "",
                    "wf_triggerer_provider_uid": "",
                    "wf_triggerer_provider_login": "",
                    "wf_triggerer_provider_avatar": "",
                    "wf_triggerer_id": workflow.hook_id,
                    "wf_triggered_by": TRIGGERED_BY_API,
                    "ppl_triggerer_user_id": "",
                    "ppl_triggerer_id": "",
                    "ppl_triggered_by": 0,
                },
                "terminated_by": "",
                "hook_id": workflow.hook_id,
                "snapshot_id": "",
                "project_id": project.id,
                "working_directory": ppl.working_directory,
                "partial_rerun_of": "",
                "result": ppl.result,
                "queuing_at": _api_time(ppl.created_at),
                "commit_sha": ppl.commit_sha,
                "terminate_request": "",
                "compile_task_id": "",
                "env_vars": [{"name": k, "value": v} for k, v in ppl.parameters.items()],
                "stopping_at": _api_time(ppl.stopping_at),
                "created_at": _api_time(ppl.created_at),
                "wf_id": ppl.workflow_id,
                "name": ppl.name,
                "result_reason": ppl.result_reason,
                "branch_name": ppl.branch_name,
                "after_task_id": "",
                "done_at": _api_time(ppl.done_at),
                "error_description": ppl.error_description,
                "queue": {
                    "type": 0,
                    "scope": "project",
                    "queue_id": _uuid_for("queue", project.id, ppl.branch_name, pipeline_file),
                    "project_id": project.id,
                    "organization_id": self.organization_id,
                    "name": f"{ppl.branch_name}-{pipeline_file}",
                },
                "switch_id": "",
                "promotion_of": "",
                "yaml_file_name": ppl.yaml_file_name,
            }
            if ppl.state != "done":
                # pipelines_client/response_formatter.ex, remove_result_if_not_done/1.
                del data["result"], data["result_reason"]
            blocks = [_api_block(block) for block in ppl.blocks] if detailed else []
            return {"pipeline": data, "blocks": blocks}

    # -- notifications ------------------------------------------------------------------------

    def pipeline_done_payload(
        self,
        pipeline_id: str,
        *,
        pull_request: Mapping[str, Any] | None = None,
        commit_message: str = "Update the model",
        sender: str = "mlgate-dev",
    ) -> JSON:
        """The notification Semaphore posts when the pipeline is done, with the real field set.

        A pull-request pipeline (given `pull_request`, or a workflow run on `refs/pull/N`) has
        `revision.commit_sha` = the merge commit (`merge_sha`, else a made-up one) and the PR
        head in `pull_request.head_sha`; `number` is a string, as Semaphore sends it.
        `pull_request` keys: number, head_sha, name, branch_name, head_repo_slug, base_sha,
        merge_sha.
        """
        with self._lock:
            ppl = self.pipeline(pipeline_id)
            if ppl.state != "done":
                raise EmulatorError(
                    f"pipeline {pipeline_id} is still {ppl.state}: finish_pipeline() first"
                )
            workflow = self._workflows[ppl.workflow_id]
            project = self._projects[ppl.project_id]
            revision = self._revision(workflow, project, pull_request, commit_message, sender)
            return {
                "version": PAYLOAD_VERSION,
                "organization": {"name": self.organization_name, "id": self.organization_id},
                "project": {"name": project.name, "id": project.id},
                "repository": {"url": project.repository_url, "slug": project.repository},
                "revision": revision,
                "workflow": {
                    "initial_pipeline_id": workflow.initial_pipeline_id,
                    "id": workflow.id,
                    "created_at": _hook_time(workflow.created_at),
                },
                "pipeline": {
                    "yaml_file_name": ppl.yaml_file_name,
                    "working_directory": ppl.working_directory,
                    "stopping_at": _hook_time(ppl.stopping_at),
                    "state": ppl.state,
                    "running_at": _hook_time(ppl.created_at),
                    "result_reason": ppl.result_reason,
                    "result": ppl.result,
                    "queuing_at": _hook_time(ppl.created_at),
                    "pending_at": _hook_time(ppl.created_at),
                    "name": ppl.name,
                    "id": ppl.id,
                    "error_description": ppl.error_description,
                    "done_at": _hook_time(ppl.done_at),
                    "created_at": _hook_time(ppl.created_at),
                },
                "blocks": [
                    {
                        "state": block.state,
                        "result_reason": block.result_reason,
                        "result": block.result,
                        "name": block.name,
                        "jobs": [
                            {
                                "status": job.status,
                                "result": job.result,
                                "name": job.name,
                                "index": job.index,
                                "id": job.id,
                            }
                            for job in block.jobs
                        ],
                    }
                    for block in ppl.blocks
                ],
            }

    def _revision(
        self,
        workflow: EmulatedWorkflow,
        project: EmulatedProject,
        pull_request: Mapping[str, Any] | None,
        commit_message: str,
        sender: str,
    ) -> JSON:
        reference = workflow.reference
        pr_match = re.fullmatch(r"refs/pull/(\d+)", reference)
        if pull_request is None and pr_match:
            pull_request = {"number": pr_match.group(1)}
        revision: JSON = {
            "tag": None,
            "sender": {
                "login": sender,
                "email": "",
                "avatar_url": "https://avatars.githubusercontent.com/u/0?v=4",
            },
            "reference_type": "branch",
            "reference": reference,
            "pull_request": None,
            "commit_sha": workflow.commit_sha,
            "commit_message": commit_message,
            "branch": None,
        }
        if pull_request is not None:
            unknown = set(pull_request) - {
                "number",
                "head_sha",
                "name",
                "branch_name",
                "head_repo_slug",
                "base_sha",
                "merge_sha",
            }
            if unknown:
                raise ValueError(f"unknown pull_request keys: {', '.join(sorted(unknown))}")
            number = str(pull_request.get("number") or "1")
            head = str(pull_request.get("head_sha") or workflow.commit_sha)
            base = str(pull_request.get("base_sha") or _fake_sha("base", head))
            merge = str(pull_request.get("merge_sha") or _fake_sha("merge", base, head))
            # Semaphore builds the merge commit and names it refs/semaphoreci/<sha>
            # (fixture pipeline-done-pull-request-failed.zulip.json).
            revision.update(
                reference_type="pull_request",
                reference=f"refs/semaphoreci/{merge}",
                commit_sha=merge,
                pull_request={
                    "number": number,
                    "name": str(pull_request.get("name") or f"Pull request {number}"),
                    "head_sha": head,
                    "head_repo_slug": str(pull_request.get("head_repo_slug") or project.repository),
                    "commit_range": f"{base}...{head}",
                    "branch_name": str(pull_request.get("branch_name") or f"pr-{number}"),
                },
            )
        elif reference.startswith("refs/tags/"):
            revision.update(
                reference_type="tag", tag={"name": reference.removeprefix("refs/tags/")}
            )
        else:
            branch = reference.removeprefix("refs/heads/")
            revision.update(
                reference=f"refs/heads/{branch}",
                branch={
                    "name": branch,
                    "commit_range": f"{_fake_sha('parent', workflow.commit_sha)}..."
                    f"{workflow.commit_sha}",
                },
            )
        return revision

    def deliver(
        self,
        url: str,
        payload: Mapping[str, Any],
        secret: str,
        *,
        webhook_id: str | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        """POST a notification to `url` as Semaphore would: signed, with a webhook id."""
        body = json.dumps(payload).encode()
        with Session() as session:
            return session.post(
                url,
                data=body,
                headers=webhook_headers(body, secret, webhook_id),
                timeout=timeout,
                allow_redirects=False,
            )


def _branch_name(reference: str) -> str:
    # wf_request_formatter.ex, branch_name/1.
    if reference.startswith("refs/pull/"):
        return "pull-request-" + reference.removeprefix("refs/pull/")
    if reference.startswith("refs/heads/"):
        return reference.removeprefix("refs/heads/")
    return reference


def _uuid_for(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _api_block(block: EmulatedBlock) -> JSON:
    data: JSON = {
        "block_id": block.id,
        "name": block.name,
        "build_req_id": _uuid_for("build", block.id),
        "state": block.state,
        "result": block.result,
        "result_reason": block.result_reason,
        "error_description": "",
        # The detailed answer upper-cases job enums: "FINISHED", "PASSED" (docs example).
        "jobs": [
            {
                "status": job.status.upper(),
                "result": (job.result or "").upper(),
                "name": job.name,
                "job_id": job.id,
                "index": job.index,
            }
            for job in block.jobs
        ],
    }
    if block.state != "done":
        del data["result"], data["result_reason"]
    return data


class _Api(RequestApp):
    """The emulator's WSGI application."""

    def __init__(self, emulator: SemaphoreEmulator) -> None:
        self.emu = emulator
        self._map = Map(
            [
                Rule(f"{API_PATH}/plumber-workflows", methods=["POST"], endpoint="run"),
                Rule(f"{API_PATH}/pipelines/<pipeline_id>", methods=["GET"], endpoint="describe"),
                Rule(f"{API_PATH}/promotions", methods=["POST"], endpoint="promote"),
                Rule("/workflows/<workflow_id>", methods=["GET"], endpoint="page"),
            ],
            strict_slashes=False,
        )

    def respond(self, request: Request) -> Response:
        method = request.method.upper()
        path = request.path
        body: Any = None
        auth = self._auth(request)
        delay = 0.0
        try:
            body = self._params(request)
            fault = self.emu.take_fault(method, path)
            if fault is not None:
                response = self._fault(fault)
            else:
                response = self._dispatch(request, method, path, body, auth)
                delay = self.emu._take_delay(method, path)
        except _Answer as answer:
            response = _reply(answer.status, answer.body, text=answer.text)
        except Exception:
            logger.exception("Semaphore emulator failed on %s %s", method, path)
            response = _reply(500, "Internal error")
        self.emu.record(
            RecordedRequest(
                method=method,
                path=path,
                query=dict(request.args.items()),
                status=response.status_code,
                body=body,
                auth=auth,
            )
        )
        # Recorded first: the request was acted on even if the client stops waiting.
        self.emu.pause(delay)
        return response

    def _auth(self, request: Request) -> str:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return "none"
        return "token" if hmac.compare_digest(header, f"Token {self.emu.token}") else "invalid"

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        # Plug merges query and body parameters; the docs' promotion example posts a form.
        params: dict[str, Any] = dict(request.args.items())
        if request.mimetype == "application/x-www-form-urlencoded":
            params.update(request.form.items())
            return params
        raw = request.get_data()
        if raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise _user_error("Invalid JSON body.") from None
            if not isinstance(decoded, dict):
                raise _user_error("The body must be a JSON object.")
            params.update(decoded)
        return params

    @staticmethod
    def _fault(fault: Fault) -> Response:
        if fault.body is not None:
            response = _reply(fault.status, fault.body)
        elif fault.status == 500:
            response = _reply(500, "Internal error")
        else:
            response = _reply(fault.status, f"emulated {fault.status}", text=True)
        for name, value in fault.headers.items():
            response.headers[name] = value
        return response

    def _dispatch(
        self, request: Request, method: str, path: str, params: dict[str, Any], auth: str
    ) -> Response:
        try:
            endpoint, args = self._map.bind("127.0.0.1").match(path, method)
        except HTTPException:
            raise _not_found() from None
        if endpoint == "page":
            return self._page(str(args["workflow_id"]))
        if auth != "token":
            raise _Answer(401, "Unauthorized", text=True)
        if endpoint == "run":
            return self._run(params)
        if endpoint == "describe":
            detailed = request.args.get("detailed", "false").lower() == "true"
            pipeline_id = str(args["pipeline_id"])
            with self.emu._lock:
                if pipeline_id not in self.emu._pipelines:
                    raise _not_found()
                return _reply(200, self.emu.pipeline_json(pipeline_id, detailed=detailed))
        return self._promote(params)

    def _run(self, params: dict[str, Any]) -> Response:
        project_id = params.get("project_id")
        if not isinstance(project_id, str) or not project_id:
            raise _user_error("Missing required parameter project_id.")
        reference = params.get("reference")
        if not isinstance(reference, str) or not reference:
            raise _user_error("Missing required parameter reference.")
        commit_sha = params.get("commit_sha")
        if commit_sha is not None and (
            not isinstance(commit_sha, str) or not re.fullmatch(r"[0-9a-f]{7,40}", commit_sha)
        ):
            raise _user_error(f"Invalid value of 'commit_sha' param: {commit_sha!r}.")
        pipeline_file = params.get("pipeline_file") or DEFAULT_PIPELINE_FILE
        if not isinstance(pipeline_file, str):
            raise _user_error("Invalid value of 'pipeline_file' param: needs to be a string.")
        parameters = params.get("parameters") or {}
        if not isinstance(parameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()
        ):
            raise _user_error("Invalid value of 'parameters' param: needs to map names to strings.")
        if not reference.startswith("refs/"):
            reference = "refs/heads/" + reference  # wf_request_formatter.ex, ref/1
        workflow = self.emu._run_workflow(
            project_id, reference, commit_sha, pipeline_file, parameters
        )
        return _reply(
            200, {"workflow_id": workflow.id, "pipeline_id": workflow.initial_pipeline_id}
        )

    def _promote(self, params: dict[str, Any]) -> Response:
        pipeline_id = params.get("pipeline_id")
        if not isinstance(pipeline_id, str) or not pipeline_id:
            raise _user_error("Missing required post parameter pipeline_id.")
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise _user_error("Missing required post parameter name.")
        override = params.get("override", False)
        if override in ("true", "false"):
            override = override == "true"
        if not isinstance(override, bool):
            raise _user_error(
                f"Invalid value of 'override' param: {json.dumps(override)} - needs to be boolean."
            )
        token = params.get("request_token")
        if not isinstance(token, str) or not token:
            token = str(uuid.uuid4())  # request_formatter.ex: Map.get(..., UUID.uuid4())
        parameters = {k: v for k, v in params.items() if k not in PROMOTION_FIELDS}
        for key, value in parameters.items():
            if not isinstance(value, str):
                raise _user_error(f"Invalid value of '{key}' param: needs to be a string.")
        self.emu._trigger_promotion(pipeline_id, name, token, override, parameters)
        return _reply(200, PROMOTION_TRIGGERED)

    def _page(self, workflow_id: str) -> Response:
        with self.emu._lock:
            workflow = self.emu._workflows.get(workflow_id)
            if workflow is None:
                raise _not_found()
            pipeline = self.emu._pipelines[workflow.initial_pipeline_id]
            state = pipeline.result or pipeline.state
        page = (
            f"<!doctype html><title>Workflow {html.escape(workflow.id)}</title>"
            f"<h1>{html.escape(workflow.pipeline_file)} on {html.escape(workflow.reference)}</h1>"
            f"<p>Pipeline {html.escape(pipeline.id)}: {html.escape(state)}</p>"
        )
        return Response(page, status=200, content_type="text/html; charset=utf-8")


def _reply(status: int, body: Any, *, text: bool = False) -> Response:
    if text:
        return Response(str(body), status=status, content_type="text/plain; charset=utf-8")
    return Response(json.dumps(body), status=status, content_type="application/json")
