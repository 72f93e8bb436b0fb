"""Deployment approval: the mlgate/deploy check, who may approve, and deploying a sha once."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
import requests

from bot.core.config import DeployConfig
from bot.core.permissions import at_least
from bot.errors import GitHubError, RunnerError
from bot.github.github_client import GitHubClient
from bot.runs import runner
from bot.runs.check_runs import DEPLOY_CHECK, Checks
from bot.semaphore.pipelines import PipelineDone
from bot.semaphore.semaphore_client import SemaphoreClient
from bot.settings import Settings
from bot.state import audit, deploys, queues
from bot.state.deploys import CommitPipeline

log = logging.getLogger(__name__)

# GitHub allows label and identifier at most 20 characters, description at most 40.
APPROVE = "approve-deploy"
DEPLOY_ACTIONS = (
    {
        "label": "Approve deploy",
        "identifier": APPROVE,
        "description": "Approve deploying this commit",
    },
)
# The audit decision kind that records a valid approval of one head sha.
APPROVAL = "deploy-approval"
ON_APPROVAL, ON_MERGE = "approval", "merge"
# .github/mlgate.yml has no deploy timeout; a deploy command gets this long before it is killed.
DEPLOY_TIMEOUT = 3600


# -------------------------------------------------------------------------- the check


def gate_passed(conn: redis.Redis, repo: str, number: int, sha: str) -> bool:
    """The quality gate passed at `sha`, or someone /override'd it there (which may come
    before any evaluation published)."""
    if deploys.gate_recorded_passed(conn, repo, sha):
        return True
    return audit.decision(conn, "override", repo, number, sha) is not None


def approved_title(user: str, on: str) -> str:
    return f"Approved by @{user} — " + ("deployed" if on == ON_APPROVAL else "deploys on merge")


def publish_check(
    gh: GitHubClient, conn: redis.Redis, repo: str, number: int, sha: str, deploy: DeployConfig
) -> None:
    """Show `mlgate/deploy` on `sha` as its state is: waiting for the gate, waiting for an
    approval (with the button and the refusals so far), or approved."""
    checks = Checks(gh, conn, repo)
    approval = audit.decision(conn, APPROVAL, repo, number, sha)
    if approval is not None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval.at))
        checks.complete(
            DEPLOY_CHECK,
            sha,
            "success",
            approved_title(approval.user, deploy.on),
            f"@{approval.user} approved deploying {sha[:7]} at {when}.",
            actions=[],
        )
        return
    refusals = deploys.refusals(conn, repo, sha)
    refused = (
        ("\n\nRefused approvals:\n" + "\n".join(f"- {r}" for r in refusals)) if refusals else ""
    )
    if not gate_passed(conn, repo, number, sha):
        checks.complete(
            DEPLOY_CHECK,
            sha,
            "neutral",
            "Waiting for the quality gate",
            f"Deploying {sha[:7]} can be approved once mlgate/quality passes (or is "
            f"overridden) for it.{refused}",
            actions=[],
        )
        return
    checks.complete(
        DEPLOY_CHECK,
        sha,
        "action_required",
        "Waiting for a deploy approval",
        f"The quality gate passed at {sha[:7]}. {describe_approvers(deploy)} may approve "
        f"deploying it: the Approve deploy button, or `/deploy` in a comment.{refused}",
        actions=[dict(a) for a in DEPLOY_ACTIONS],
    )


def describe_approvers(deploy: DeployConfig) -> str:
    who = deploy.approvers
    parts = [f"users with {who.permission} permission or more"] if who.permission else []
    parts += [f"@{u}" for u in who.users] + [f"team {t}" for t in who.teams]
    return ", ".join(parts).capitalize() if parts else "Nobody"


# -------------------------------------------------------------------------- approving


def _in_team(gh: GitHubClient, org: str, team: str, user: str) -> bool:
    # A team is `slug` (of the repository's owner) or `org/slug`.
    owner, _, slug = team.rpartition("/")
    path = f"/orgs/{owner or org}/teams/{slug}/memberships/{user}"
    try:
        answer = gh.get_json(path)
    except GitHubError as exc:
        if exc.status == 404:  # not a member (or no such team): GitHub says 404 for both
            return False
        raise
    return isinstance(answer, dict) and answer.get("state") == "active"


def refusal(
    gh: GitHubClient,
    conn: redis.Redis,
    pull: dict[str, Any],
    repo: str,
    sha: str,
    deploy: DeployConfig,
    user: str,
    permission: Callable[[], str],
) -> str | None:
    """Why `user` may not approve deploying `sha` of `pull` (as GitHub has it now), or None."""
    number = int(pull["number"])
    if pull.get("state") != "open" or pull["head"]["sha"] != sha:
        return f"stale: {sha[:7]} is no longer the head of this open pull request"
    if not gate_passed(conn, repo, number, sha):
        return f"the quality gate has not passed (nor been overridden) at {sha[:7]}"
    if not deploy.allow_self_approval and user.lower() == str(pull["user"]["login"]).lower():
        return "the author of a pull request may not approve its deploy (allow_self_approval)"
    who = deploy.approvers
    named = user.lower() in {u.lower() for u in who.users}
    if named or (who.permission is not None and at_least(permission(), who.permission)):
        return None
    org = repo.partition("/")[0]
    if any(_in_team(gh, org, team, user) for team in who.teams):
        return None
    return f"@{user} is not an approver ({describe_approvers(deploy)})"


def refuse(conn: redis.Redis, repo: str, number: int, sha: str, user: str, why: str) -> None:
    """Audit the refusal and keep it for the check's summary."""
    audit.record(conn, repo, audit.Entry("deploy-refused", user, number, sha, why))
    deploys.add_refusal(conn, repo, sha, f"@{user}: {why}")


def approve(conn: redis.Redis, repo: str, number: int, sha: str, user: str) -> audit.Entry:
    entry = audit.record(conn, repo, audit.Entry("approve-deploy", user, number, sha))
    audit.set_decision(conn, APPROVAL, repo, entry)
    return entry


# -------------------------------------------------------------------------- deploying


@dataclass(frozen=True)
class DeployRequest:
    """Deploy `sha` (the PR head, or its merge commit) of PR `number` approved at `head_sha`."""

    repo: str
    number: int
    head_sha: str
    sha: str
    kind: str  # "approval" or "merge"
    approver: str
    installation_id: int | None
    promotion: str | None = None  # deploy.promotion when approved, for a deploy that waits
    clone_url: str = ""  # for deploy.run, which runs the commit on a worker

    @property
    def token(self) -> str:
        """Semaphore's request_token and our own claim: one deploy per (repo, PR, sha, kind),
        whatever retries, double clicks and duplicate webhooks happen."""
        raw = "\n".join((self.repo.lower(), str(self.number), self.head_sha, self.kind))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


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


def resume(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    request: DeployRequest,
    pipeline: CommitPipeline,
) -> str:
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
) -> str:
    """Deploy once per request token: "duplicate", "pending" (waiting for the commit's
    pipeline), "promoted", "failed" or "unsupported"."""
    if not deploys.claim_deploy(conn, request.token):
        log.info("deploy already started", extra={"repo": request.repo, "pr": request.number})
        return "duplicate"
    try:
        if deploy.promotion is None:
            assert deploy.run is not None, "the configuration has promotion or run"
            return _queue_local(conn, request, deploy.run)
        pipeline = deploys.pipeline_for(conn, request.repo, request.sha)
        if pipeline is None:
            waiting = replace(request, promotion=deploy.promotion)
            deploys.save_pending(conn, request.repo, request.sha, asdict(waiting))
            return "pending"
        return promote(settings, conn, gh, request, deploy.promotion, pipeline)
    except BaseException:
        deploys.release_deploy(
            conn, request.token
        )  # the job's retry deploys; Semaphore de-duplicates by token
        raise


def _queue_local(conn: redis.Redis, request: DeployRequest, argv: Sequence[str]) -> str:
    """`deploy.run` runs the commit on a `runs` worker: a deploy may take long."""
    queues.enqueue_run(
        conn,
        "deploy",
        queues.DEPLOY_WITH_RUNNER,
        request.repo,
        request.number,
        request.sha,
        request=asdict(request),
        argv=list(argv),
    )
    return "queued"


def run_locally(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    request: DeployRequest,
    argv: Sequence[str],
    token: str,
) -> str:
    """Run `deploy.run` on exactly `request.sha` with the hardened runner; the GitHub
    Deployment goes in_progress, then success or failure by its exit code."""
    how = f"deploy.run `{shlex.join(argv)}`"
    deployment = int(_deployment(gh, request, how)["id"])
    gh.create_deployment_status(request.repo, deployment, "in_progress", description=how[:140])
    allowed = runner.allowed_secrets(settings.runner_secrets, os.environ)
    checkout = runner.checkout_path(settings.data_dir, request.repo, None, request.sha)
    try:
        runner.fetch(request.clone_url, request.sha, checkout, token)
    except RunnerError as exc:
        gh.create_deployment_status(
            request.repo, deployment, "error", description=f"fetch failed: {exc}"[:140]
        )
        return "failed"
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
        argv, checkout, env=env, timeout=DEPLOY_TIMEOUT, secrets=[token, *allowed.values()]
    )
    passed = result.exit_code == 0 and not result.timed_out
    ending = "timed out" if result.timed_out else f"exited with {result.exit_code}"
    gh.create_deployment_status(
        request.repo,
        deployment,
        "success" if passed else "failure",
        description=f"{how} {ending}"[:140],
    )
    audit.record(
        conn,
        request.repo,
        audit.Entry(
            "deploy" if passed else "deploy-failed",
            request.approver,
            request.number,
            request.head_sha,
            f"{how} on {request.sha[:7]} {ending}",
        ),
    )
    log.info("deploy.run %s", ending, extra={"repo": request.repo, "pr": request.number})
    return "deployed" if passed else "failed"


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
) -> str:
    how = f"Semaphore promotion {name}"
    if not pipeline.passed:
        deployment = _deployment(gh, request, how)
        gh.create_deployment_status(
            request.repo,
            int(deployment["id"]),
            "failure",
            description=f"the pipeline of {request.sha[:7]} did not pass; nothing promoted",
        )
        audit.record(
            conn,
            request.repo,
            audit.Entry("deploy-failed", request.approver, request.number, request.head_sha, how),
        )
        return "failed"
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
    audit.record(
        conn,
        request.repo,
        audit.Entry(
            "deploy",
            request.approver,
            request.number,
            request.head_sha,
            f"{how} of pipeline {pipeline.pipeline_id} for {request.sha[:7]}",
        ),
    )
    return "promoted"


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
