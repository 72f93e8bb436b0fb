"""Publishing a done Semaphore pipeline once, whether its notification or the poll found it."""

from __future__ import annotations

import logging

from bot.core.pr_facts import PullRequest
from bot.github.github_client import GitHubClient
from bot.runs.context import Context
from bot.runs.evaluation import Evaluator
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import LOOP_RUN, RetrainRequest
from bot.runs.retrain_loop import RetrainLoop
from bot.semaphore.pipelines import PipelineDone
from bot.state.semaphore_runs import SemaphoreRun, claim, release

log = logging.getLogger(__name__)


def publish_run(
    ctx: Context, run: SemaphoreRun, done: PipelineDone, extra: dict[str, object]
) -> str | None:
    """Publish a done pipeline of a run mlgate started; the notification and the poll
    (semaphore_poll.py) both come here."""
    installation = run.installation_id or ctx.github.installation_for_repo(run.repo)
    gh = ctx.github.client(installation)
    if run.kind == LOOP_RUN:
        # A retrain of the default branch: no PR to evaluate; the retrain loop ends it.
        loop = RetrainLoop(
            ctx.settings, ctx.redis, gh, token=lambda: ctx.github.installation_token(installation)
        )
        return loop.pipeline_done(RetrainRequest.from_job(dict(run.retrain)), done, run)
    return publish(ctx, gh, installation, PullRequest(**run.pull), done, run, extra)


def publish(
    ctx: Context,
    gh: GitHubClient,
    installation: int,
    pr: PullRequest,
    done: PipelineDone,
    run: SemaphoreRun | None,
    extra: dict[str, object],
) -> str | None:
    """Publish a done pipeline once: the outcome, or None when it was published already."""
    if not claim(ctx.redis, done.pipeline_id):
        log.info("semaphore: pipeline already published", extra=extra)
        return None
    evaluator = Evaluator(
        ctx.settings,
        ctx.redis,
        gh,
        token=lambda: ctx.github.checkout_token(installation, pr.repo),
        installation_id=installation,
    )
    try:
        outcome = Publisher(gh, ctx.redis).publish(evaluator.publish_pipeline(pr, done, run))
    except BaseException:
        release(ctx.redis, done.pipeline_id)  # the job's retry publishes
        raise
    log.info(
        "semaphore pipeline published: %s",
        outcome,
        extra=extra | {"pr": pr.number, "sha": pr.head_sha, "pipeline_id": done.pipeline_id},
    )
    return outcome
