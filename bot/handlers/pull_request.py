"""Pull requests: every new head is evaluated; a newer head supersedes older runs."""

from __future__ import annotations

import logging
import time

from bot.core.config import load_config
from bot.core.pr_facts import PullRequest, github_time
from bot.core.routing import Event, Router
from bot.errors import RepoConfigError
from bot.github.repo_files import RepoFiles
from bot.runs import deploy
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.context import Context
from bot.runs.deploy_decisions import APPROVAL, ON_MERGE, DeployRequest
from bot.runs.evaluation import Evaluator
from bot.runs.evaluation_queue import EVALUATE, queued
from bot.runs.head_records import HeadRecords
from bot.runs.publication import CheckOutput, Publication
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import RETRAIN_LABEL, is_retrain_branch
from bot.state import audit, queues, retrain_pulls
from bot.state.pr_heads import first_seen, record_appearance, record_head

log = logging.getLogger(__name__)
router = Router()

# The actions whose `pull_request.updated_at` is when their head appeared: a command written
# before then was not written about this code, and is refused (bot/runs/pr_commands.py).
BRINGS_HEAD = ("opened", "synchronize", "reopened")


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
def pull_request_changed(event: Event, ctx: Context) -> None:
    pr = PullRequest.from_api(event.payload["pull_request"], event.payload["repository"])
    assert event.installation_id is not None
    shown = Publication(pr.repo, pr.number)
    previous = record_head(ctx.redis, pr.repo, pr.number, pr.head_sha)
    appeared = github_time(event.payload["pull_request"].get("updated_at"))
    if event.action in BRINGS_HEAD and appeared is not None:
        record_appearance(ctx.redis, pr.repo, pr.number, pr.head_sha, appeared)
    else:
        first_seen(ctx.redis, pr.repo, pr.number, pr.head_sha, time.time())
    if previous and queues.cancel_run(ctx.redis, EVALUATE, pr.repo, pr.number, previous):
        superseded = CheckOutput(
            QUALITY_CHECK,
            previous,
            "Superseded",
            f"Commit {pr.short_sha} was pushed before this one was evaluated.",
            "cancelled",
        )
        shown = shown.with_checks([superseded])
        log.info("superseded a queued evaluation", extra=event.log_extra())
    shown = shown.then(queued(pr, event.installation_id))
    Publisher(ctx.client(event), ctx.redis).publish(shown)


@router.register("pull_request", action="closed")
def retrain_pull_closed(event: Event, ctx: Context) -> None:
    """A retrain PR merged or closed leaves the dashboard's open retrain PRs."""
    pull = event.payload["pull_request"]
    repo = str(event.payload["repository"]["full_name"])
    head = pull.get("head") or {}
    same_repo = str((head.get("repo") or {}).get("full_name") or "").lower() == repo.lower()
    labels = {str(label.get("name")) for label in pull.get("labels") or []}
    if (same_repo and is_retrain_branch(str(head.get("ref") or ""))) or RETRAIN_LABEL in labels:
        retrain_pulls.record_closed(ctx.redis, repo, int(pull["number"]))


@router.register("pull_request", action="closed")
def pull_request_closed(event: Event, ctx: Context) -> None:
    """A merged PR whose head was approved for `deploy.on: merge` deploys its merge commit."""
    pull = event.payload["pull_request"]
    if not pull.get("merged") or not pull.get("merge_commit_sha"):
        return
    pr = PullRequest.from_api(pull, event.payload["repository"])
    approval = audit.decision(ctx.redis, APPROVAL, pr.repo, pr.number, pr.head_sha)
    if approval is None:
        return  # merged without an approval of its last head: nothing to deploy
    gh = ctx.client(event)
    try:
        # The default branch's configuration, as every decision of mlgate reads it.
        config = load_config(RepoFiles(gh, ctx.redis, pr.repo).read, pr.default_branch)
    except RepoConfigError:
        log.warning("merged PR not deployed: configuration invalid", extra=event.log_extra())
        return
    if not config.deploy.enabled or config.deploy.on != ON_MERGE:
        return
    request = DeployRequest(
        pr.repo,
        pr.number,
        pr.head_sha,
        str(pull["merge_commit_sha"]),
        ON_MERGE,
        approval.user,
        event.installation_id,
        clone_url=pr.clone_url,
    )
    started = deploy.start(ctx.settings, ctx.redis, gh, request, config.deploy)
    log.info("merged PR deploy: %s", started.outcome, extra=event.log_extra())
    shown = None
    try:
        # The comment's audit trail shows the deploy the merge started.
        records = HeadRecords(ctx.redis, pr.repo, pr.number, list(started.audit))
        shown = Evaluator(ctx.settings, ctx.redis, gh, token=lambda: "").republish(pr, records)
    finally:
        # The deploy happened: its audit entry is written even if the comment is not.
        Publisher(gh, ctx.redis).publish(started if shown is None else started.then(shown))
