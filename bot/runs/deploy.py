"""Deploying an approved sha once (Semaphore promotion or `deploy.run`) as a GitHub Deployment."""

from __future__ import annotations

import logging
import os
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import redis
import requests

from bot.core.config import DeployConfig
from bot.errors import GitHubError, RunnerError, SandboxUnavailable
from bot.github.github_client import GitHubClient
from bot.runs import runner
from bot.runs.deploy_decisions import APPROVAL, DeployRequest, deploy_check
from bot.runs.head_records import HeadRecords
from bot.runs.publication import AuditRecord, CheckOutput, Publication
from bot.runs.sandbox import DEFAULT_MEMORY, HOW_TO_FIX, require
from bot.semaphore.pipelines import PipelineDone
from bot.semaphore.semaphore_client import SemaphoreClient
from bot.settings import SANDBOX_NONE, Settings
from bot.state import audit, deploys, queues
from bot.state.deploys import CommitPipeline

log = logging.getLogger(__name__)

# .github/mlgate.yml has no deploy timeout; a deploy command gets this long before it is killed.
DEPLOY_TIMEOUT = 3600
# The outcome of a deploy.run that could not run for want of a sandbox: nothing happened.
SANDBOX_MISSING = "sandbox-unavailable"


def check_of(records: HeadRecords, sha: str, deploy: DeployConfig) -> CheckOutput:
    """`mlgate/deploy` on `sha`, from what is recorded about it (pending records included)."""
    return deploy_check(
        sha,
        deploy,
        records.decision(APPROVAL, sha),
        records.refusals(sha),
        records.gate_passed(sha),
        refused=records.refused(sha),
    )


def in_team(gh: GitHubClient, repo: str, team: str, user: str) -> bool:
    """Whether `user` is an active member of `team`: `slug` (of the repository's owner) or
    `org/slug`."""
    owner, _, slug = team.rpartition("/")
    path = f"/orgs/{owner or repo.partition('/')[0]}/teams/{slug}/memberships/{user}"
    try:
        answer = gh.get_json(path)
    except GitHubError as exc:
        if exc.status == 404:  # not a member (or no such team): GitHub says 404 for both
            return False
        raise
    return isinstance(answer, dict) and answer.get("state") == "active"


# -------------------------------------------------------------------------- deploying


def record_pipeline(conn: redis.Redis, done: PipelineDone) -> str | None:
    """Remember the pipeline of its commit (the PR head for PR pipelines, whose
    `revision.commit_sha` is a merge commit Semaphore made); returns that commit."""
    commit = done.head_sha or done.commit_sha
    if done.repo is None or not commit:
        return None
    found = CommitPipeline(done.pipeline_id, done.workflow_id, done.passed)
    deploys.record_pipeline(conn, done.repo, commit, found)
    return commit


def take_pending(conn: redis.Redis, repo: str, sha: str) -> DeployRequest | None:
    """The deploy waiting for the pipeline of `sha`, taken (a second notification finds none)."""
    fields = deploys.take_pending(conn, repo, sha)
    return DeployRequest(**fields) if fields is not None else None


def _audited(request: DeployRequest, outcome: str, kind: str, detail: str) -> Publication:
    entry = audit.Entry(kind, request.approver, request.number, request.head_sha, detail)
    return Publication(request.repo, request.number, outcome, audit=(AuditRecord(entry),))


def resume(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    request: DeployRequest,
    pipeline: CommitPipeline,
) -> Publication:
    """Promote the pipeline a deploy waited for; on an error it waits again for the retry."""
    try:
        return promote(settings, conn, gh, request, request.promotion or "", pipeline)
    except BaseException:
        deploys.save_pending(conn, request.repo, request.sha, asdict(request))
        raise


def start(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    request: DeployRequest,
    deploy: DeployConfig,
) -> Publication:
    """Deploy once per request token; the outcome is "duplicate", "pending" (waiting for the
    commit's pipeline), "promoted", "failed" or "queued" (`deploy.run` on a worker)."""
    if not deploys.claim_deploy(conn, request.token):
        log.info("deploy already started", extra={"repo": request.repo, "pr": request.number})
        return Publication(request.repo, request.number, "duplicate")
    try:
        if deploy.promotion is None:
            assert deploy.run is not None, "the configuration has promotion or run"
            return _queue_local(conn, request, deploy)
        pipeline = deploys.pipeline_for(conn, request.repo, request.sha)
        if pipeline is None:
            waiting = replace(request, promotion=deploy.promotion)
            deploys.save_pending(conn, request.repo, request.sha, asdict(waiting))
            return Publication(request.repo, request.number, "pending")
        return promote(settings, conn, gh, request, deploy.promotion, pipeline)
    except BaseException:
        # The job's retry deploys; Semaphore de-duplicates the promotion by its token.
        deploys.release_deploy(conn, request.token)
        raise


def _queue_local(conn: redis.Redis, request: DeployRequest, deploy: DeployConfig) -> Publication:
    """`deploy.run` runs the commit on a `runs` worker: a deploy may take long. Queued here,
    not by the publisher: the claim just taken stands for this very job."""
    assert deploy.run is not None
    queues.enqueue_run(
        conn,
        "deploy",
        queues.DEPLOY_WITH_RUNNER,
        request.repo,
        request.number,
        request.sha,
        request=asdict(request),
        argv=list(deploy.run),
        network=deploy.network,
        memory=deploy.memory,
    )
    return Publication(request.repo, request.number, "queued")


def run_locally(
    settings: Settings,
    gh: GitHubClient,
    request: DeployRequest,
    argv: Sequence[str],
    token: str,
    *,
    network: bool = True,
    memory: int = DEFAULT_MEMORY,
) -> Publication:
    """Run `deploy.run` on exactly `request.sha` in the sandbox, with the step's `network`
    (a deploy's default: on) and `memory`; the GitHub Deployment goes in_progress, then
    success or failure by its exit code. Where no sandbox can hold it, nothing runs: the
    Deployment is error and the outcome SANDBOX_MISSING.

    `token` fetches the checkout: one that reads this repository only.
    """
    how = f"deploy.run `{shlex.join(argv)}`"
    deployment = int(_deployment(gh, request, how)["id"])
    gh.create_deployment_status(request.repo, deployment, "in_progress", description=how[:140])
    if settings.sandbox != SANDBOX_NONE:
        try:
            require()
        except SandboxUnavailable as exc:
            log.warning("deploy.run not run: %s", exc, extra={"repo": request.repo})
            gh.create_deployment_status(
                request.repo,
                deployment,
                "error",
                description=f"not run: no sandbox; {HOW_TO_FIX}"[:140],
            )
            return _audited(request, SANDBOX_MISSING, "deploy-failed", f"{how} not run: {exc}")
    allowed = runner.allowed_secrets(settings.runner_secrets, os.environ)
    checkout = runner.checkout_path(settings.data_dir, request.repo, None, request.sha)
    try:
        try:
            runner.fetch(request.clone_url, request.sha, checkout, token)
        except RunnerError as exc:
            gh.create_deployment_status(
                request.repo, deployment, "error", description=f"fetch failed: {exc}"[:140]
            )
            return Publication(request.repo, request.number, "failed")
        env = runner.run_environment(
            params={"APPROVED_BY": request.approver},
            run_id=uuid.uuid4().hex,
            repo=request.repo,
            pr=request.number,
            sha=request.sha,
            allowed_secrets=allowed,
            home=runner.fresh_home(checkout),
        )
        result = runner.run(
            argv,
            checkout,
            env=env,
            timeout=DEPLOY_TIMEOUT,
            secrets=[token, *allowed.values()],
            network=network,
            memory=memory,
            sandbox=settings.sandbox,
            data_dir=settings.data_dir,
        )
    finally:
        runner.remove_checkout(checkout)
    passed = result.exit_code == 0 and not result.timed_out
    ending = "timed out" if result.timed_out else f"exited with {result.exit_code}"
    gh.create_deployment_status(
        request.repo,
        deployment,
        "success" if passed else "failure",
        description=f"{how} {ending}"[:140],
    )
    log.info("deploy.run %s", ending, extra={"repo": request.repo, "pr": request.number})
    return _audited(
        request,
        "deployed" if passed else "failed",
        "deploy" if passed else "deploy-failed",
        f"{how} on {request.sha[:7]} {ending}",
    )


def _deployment(gh: GitHubClient, request: DeployRequest, how: str) -> dict[str, Any]:
    # required_contexts []: the quality gate was checked by mlgate; GitHub would otherwise
    # refuse a commit whose other checks are not all green.
    created: dict[str, Any] = gh.create_deployment(
        request.repo,
        request.sha,
        required_contexts=[],
        auto_merge=False,
        description=f"{how}, approved by @{request.approver} on #{request.number}"[:140],
        payload={"pr": request.number, "approved_by": request.approver, "kind": request.kind},
    )
    return created


def promote(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    request: DeployRequest,
    name: str,
    pipeline: CommitPipeline,
) -> Publication:
    how = f"Semaphore promotion {name}"
    if not pipeline.passed:
        deployment = _deployment(gh, request, how)
        gh.create_deployment_status(
            request.repo,
            int(deployment["id"]),
            "failure",
            description=f"the pipeline of {request.sha[:7]} did not pass; nothing promoted",
        )
        return _audited(request, "failed", "deploy-failed", how)
    with requests.Session() as session:
        client = SemaphoreClient(
            settings.semaphore_api_url, settings.semaphore_api_token, session=session
        )
        client.trigger_promotion(
            pipeline.pipeline_id,
            name,
            request.token,
            {
                "MLGATE_REPO": request.repo,
                "MLGATE_PR": str(request.number),
                "MLGATE_SHA": request.sha,
                "MLGATE_APPROVED_BY": request.approver,
            },
        )
        url = client.workflow_url(pipeline.workflow_id)
    deployment = _deployment(gh, request, how)
    link = {"log_url": url} if url else {}
    gh.create_deployment_status(
        request.repo, int(deployment["id"]), "in_progress", description=how[:140], **link
    )
    record = {
        "repo": request.repo,
        "deployment_id": int(deployment["id"]),
        "source_pipeline_id": pipeline.pipeline_id,
        "installation_id": request.installation_id,
        "url": url,
    }
    deploys.record_promotion(conn, pipeline.workflow_id, record)
    detail = f"{how} of pipeline {pipeline.pipeline_id} for {request.sha[:7]}"
    return _audited(request, "promoted", "deploy", detail)


def promoted_pipeline(conn: redis.Redis, done: PipelineDone) -> dict[str, Any] | None:
    """The deployment a done pipeline ends: one of a workflow mlgate promoted, other than the
    pipeline it promoted (a promotion adds a pipeline to the same workflow)."""
    record = deploys.promotion(conn, done.workflow_id)
    if record is None:
        return None
    return None if record["source_pipeline_id"] == done.pipeline_id else record


def finish(gh: GitHubClient, record: dict[str, Any], done: PipelineDone) -> None:
    state = "success" if done.passed else "failure"
    link = {"log_url": record["url"]} if record.get("url") else {}
    gh.create_deployment_status(
        record["repo"],
        int(record["deployment_id"]),
        state,
        description=f"the promoted pipeline {done.result or 'ended'}",
        **link,
    )
