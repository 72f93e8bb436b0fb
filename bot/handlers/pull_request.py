"""Pull requests: every new head is evaluated; a newer head supersedes older runs."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from bot import queueing
from bot.checks import QUALITY_CHECK, Checks
from bot.context import Context
from bot.evaluation import PullRequest, record_head
from bot.routing import Event, Router

log = logging.getLogger(__name__)
router = Router()

EVALUATE = "evaluate"


def queue_evaluation(
    ctx: Context, event: Event, pr: PullRequest, note: str = "", kind: str = EVALUATE, **job: Any
) -> None:
    """Show `mlgate/quality` queued at once, then leave the work to a `runs` worker.

    Runs of one `kind` for one head are queued once; a command passes a kind of its own, so
    that two commands in a row queue one behind the other.
    """
    assert event.installation_id is not None
    checks = Checks(ctx.client(event), ctx.redis, pr.repo)
    checks.start(QUALITY_CHECK, pr.head_sha, "queued")
    queueing.enqueue_run(
        ctx.redis,
        kind,
        queueing.EVALUATE_PULL_REQUEST,
        pr.repo,
        pr.number,
        pr.head_sha,
        pr=asdict(pr),
        installation_id=event.installation_id,
        note=note,
        **job,
    )


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
def pull_request_changed(event: Event, ctx: Context) -> None:
    pr = PullRequest.from_api(event.payload["pull_request"], event.payload["repository"])
    previous = record_head(ctx.redis, pr)
    if previous and queueing.cancel_run(ctx.redis, EVALUATE, pr.repo, pr.number, previous):
        Checks(ctx.client(event), ctx.redis, pr.repo).complete(
            QUALITY_CHECK,
            previous,
            "cancelled",
            "Superseded",
            f"Commit {pr.short_sha} was pushed before this one was evaluated.",
        )
        log.info("superseded a queued evaluation", extra=event.log_extra())
    queue_evaluation(ctx, event, pr)
