"""Pull requests: every new head is evaluated; a newer head supersedes older runs."""

from __future__ import annotations

import logging

from bot.core.config import load_config
from bot.core.routing import Event, Router
from bot.errors import RepoConfigError
from bot.github.repo_files import RepoFiles
from bot.runs import deploy
from bot.runs.check_runs import QUALITY_CHECK, Checks
from bot.runs.context import Context
from bot.runs.evaluation import Evaluator, PullRequest
from bot.runs.evaluation_queue import EVALUATE, queue_evaluation
from bot.state import audit, queues
from bot.state.pr_heads import record_head

log = logging.getLogger(__name__)
router = Router()


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
def pull_request_changed(event: Event, ctx: Context) -> None:
    pr = PullRequest.from_api(event.payload["pull_request"], event.payload["repository"])
    previous = record_head(ctx.redis, pr.repo, pr.number, pr.head_sha)
    if previous and queues.cancel_run(ctx.redis, EVALUATE, pr.repo, pr.number, previous):
        Checks(ctx.client(event), ctx.redis, pr.repo).complete(
            QUALITY_CHECK,
            previous,
            "cancelled",
            "Superseded",
            f"Commit {pr.short_sha} was pushed before this one was evaluated.",
        )
        log.info("superseded a queued evaluation", extra=event.log_extra())
    queue_evaluation(ctx, event, pr)


@router.register("pull_request", action="closed")
def pull_request_closed(event: Event, ctx: Context) -> None:
    """A merged PR whose head was approved for `deploy.on: merge` deploys its merge commit."""
    pull = event.payload["pull_request"]
    if not pull.get("merged") or not pull.get("merge_commit_sha"):
        return
    pr = PullRequest.from_api(pull, event.payload["repository"])
    approval = audit.decision(ctx.redis, deploy.APPROVAL, pr.repo, pr.number, pr.head_sha)
    if approval is None:
        return  # merged without an approval of its last head: nothing to deploy
    gh = ctx.client(event)
    try:
        # The default branch's configuration, as every decision of mlgate reads it.
        config = load_config(RepoFiles(gh, ctx.redis, pr.repo).read, pr.default_branch)
    except RepoConfigError:
        log.warning("merged PR not deployed: configuration invalid", extra=event.log_extra())
        return
    if not config.deploy.enabled or config.deploy.on != deploy.ON_MERGE:
        return
    request = deploy.DeployRequest(
        pr.repo,
        pr.number,
        pr.head_sha,
        str(pull["merge_commit_sha"]),
        deploy.ON_MERGE,
        approval.user,
        event.installation_id,
        clone_url=pr.clone_url,
    )
    outcome = deploy.start(ctx.settings, ctx.redis, gh, request, config.deploy)
    log.info("merged PR deploy: %s", outcome, extra=event.log_extra())
    # The comment's audit trail shows the deploy the merge started.
    Evaluator(ctx.settings, ctx.redis, gh, token=lambda: "").republish(pr)
