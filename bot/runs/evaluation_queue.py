"""Queueing a PR's evaluation on a `runs` worker, with `mlgate/quality` shown queued at once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bot.core.routing import Event
from bot.runs.check_runs import QUALITY_CHECK, Checks
from bot.runs.context import Context
from bot.runs.evaluation import PullRequest
from bot.state import queues

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
    queues.enqueue_run(
        ctx.redis,
        kind,
        queues.EVALUATE_PULL_REQUEST,
        pr.repo,
        pr.number,
        pr.head_sha,
        pr=asdict(pr),
        installation_id=event.installation_id,
        note=note,
        **job,
    )
