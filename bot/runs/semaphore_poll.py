"""Semaphore runs whose notification never came: polled, published when done, expired when stale."""

from __future__ import annotations

import logging
import time
from collections import Counter
from enum import Enum

from bot.errors import SemaphoreError
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.context import Context
from bot.runs.pipeline_results import publish_run
from bot.runs.publication import FAILED, CheckOutput, Publication, Reaction
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import LOOP_RUN, RetrainRequest, failed
from bot.semaphore.pipelines import PipelineDone, pipeline_path
from bot.semaphore.semaphore_client import Pipeline, SemaphoreClient
from bot.state import semaphore_runs
from bot.state.semaphore_runs import SemaphoreRun, claim, release

log = logging.getLogger(__name__)

# The scheduler runs the poll every minute; a run is asked about at most that often, so that
# many waiting runs stay far below Semaphore's API rate limits.
POLL_INTERVAL = 60


class Action(Enum):
    """What the poll does with one waiting run."""

    WAIT = "wait"  # asked less than POLL_INTERVAL ago
    POLL = "poll"  # ask Semaphore whether the pipeline is done
    EXPIRE = "expire"  # waited too long: ask once more, then give up


def decide(
    started_at: float,
    last_polled: float | None,
    now: float,
    timeout: float,
    interval: float = POLL_INTERVAL,
) -> Action:
    """The action for a run started at `started_at` and last polled at `last_polled`."""
    if now - started_at >= timeout:
        return Action.EXPIRE
    if last_polled is not None and now - last_polled < interval:
        return Action.WAIT
    return Action.POLL


def done_from_pipeline(pipeline: Pipeline, run: SemaphoreRun) -> PipelineDone:
    """The notification a done pipeline would have sent, from GET /pipelines/:id; the failed
    blocks are left to publishing, which asks for the detailed pipeline when it failed."""
    return PipelineDone(
        pipeline_id=run.pipeline_id,
        workflow_id=pipeline.workflow_id or run.workflow_id,
        result=pipeline.result or "",
        result_reason=pipeline.result_reason or "",
        pipeline_file=pipeline_path(pipeline.working_directory, pipeline.yaml_file_name),
        project_id=pipeline.project_id or "",
        organization="",
        repo=run.repo,
        pr_number=run.number,
        head_sha=run.head_sha,
    )


def describe_wait(seconds: float) -> str:
    """`6h`, `1h30m`, `45m` or `30s`: how long a run waited, for people."""
    whole = int(seconds)
    hours, minutes = divmod(whole // 60, 60)
    if not hours and not minutes:
        return f"{whole}s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")


def expiry_summary(run: SemaphoreRun, waited: float, public_url: str) -> str:
    """What the failed check says: how long, where to look, and what to check."""
    where = run.workflow_url or f"workflow `{run.workflow_id}`"
    endpoint = f"{public_url}/webhooks/semaphore" if public_url else "/webhooks/semaphore"
    return (
        f"mlgate waited {describe_wait(waited)} for the Semaphore pipeline of run "
        f"`{run.run_id}` ({run.head_sha[:7]}): no pipeline-done notification arrived, and "
        f"polling never found it done. Semaphore workflow: {where}\n\n"
        "Check that:\n"
        f"- a Semaphore notification of this project points at `{endpoint}` with the secret "
        "`SEMAPHORE_WEBHOOK_SECRET` (docs/semaphore.md in mlgate);\n"
        "- the pipeline is not stuck: waiting for an agent, or a job that never ends (open "
        "the workflow, stop it if needed).\n\n"
        "Comment `/evaluate` to run it again."
    )


def expiry(run: SemaphoreRun, waited: float, public_url: str) -> Publication:
    """A run that waited too long: `mlgate/quality` fails saying what to check, and the
    command that started it gets 😕."""
    check = CheckOutput(
        QUALITY_CHECK,
        run.head_sha,
        f"No result from Semaphore after {describe_wait(waited)}",
        expiry_summary(run, waited, public_url),
        "failure",
        details_url=run.workflow_url,
    )
    reactions = (Reaction(run.comment_id, FAILED),) if run.comment_id is not None else ()
    return Publication(run.repo, run.number, "expired", checks=(check,), reactions=reactions)


def expire(ctx: Context, run: SemaphoreRun, waited: float) -> bool:
    """Publish the run's expiry; False when the pipeline was published meanwhile."""
    # The same claim as publishing: a notification that arrives after this is a no-op.
    if not claim(ctx.redis, run.pipeline_id):
        return False
    try:
        installation = run.installation_id or ctx.github.installation_for_repo(run.repo)
        gh = ctx.github.client(installation)
        if run.kind == LOOP_RUN:
            # A retrain of the default branch fails as a failed retrain does; no PR to tell.
            why = f"no result from the Semaphore pipeline after {describe_wait(waited)}"
            where = f"Semaphore workflow: {run.workflow_url or run.workflow_id}\n"
            shown = failed(RetrainRequest.from_job(dict(run.retrain)), why, where)
        else:
            shown = expiry(run, waited, ctx.settings.public_url)
        Publisher(gh, ctx.redis).publish(shown)
    except BaseException:
        release(ctx.redis, run.pipeline_id)  # the next sweep expires it
        raise
    return True


def sweep(ctx: Context, client: SemaphoreClient | None, now: float | None = None) -> Counter[str]:
    """Poll, publish or expire every run still waiting; counts what happened to them.

    Without a Semaphore client (the API is not configured) runs are only expired.
    """
    now = time.time() if now is None else now
    timeout = ctx.settings.semaphore_run_timeout
    counts: Counter[str] = Counter()
    for run_id in semaphore_runs.active_runs(ctx.redis):
        run = semaphore_runs.load_run(ctx.redis, run_id)
        if run is None or semaphore_runs.is_claimed(ctx.redis, run.pipeline_id):
            semaphore_runs.stop_waiting(ctx.redis, run_id)  # published (or long gone)
            counts["finished"] += 1
            continue
        last = semaphore_runs.last_polled(ctx.redis, run_id)
        action = decide(run.started_at, last, now, timeout)
        try:
            counts[_handle(ctx, client, run, action, now)] += 1
        except Exception:
            # One run GitHub refused must not hold up the others; the next sweep tries again.
            log.exception("semaphore run not swept", extra={"repo": run.repo, "run_id": run_id})
            counts["error"] += 1
    return counts


def _handle(
    ctx: Context, client: SemaphoreClient | None, run: SemaphoreRun, action: Action, now: float
) -> str:
    extra: dict[str, object] = {"repo": run.repo, "pr": run.number, "run_id": run.run_id}
    if action is Action.WAIT:
        return "waiting"
    if client is not None:
        semaphore_runs.mark_polled(ctx.redis, run.run_id, now, POLL_INTERVAL * 2)
        try:
            pipeline = client.describe_pipeline(run.pipeline_id)
        except SemaphoreError as exc:
            # A run that cannot be asked about still expires on time.
            log.warning("polling a Semaphore pipeline failed: %s", exc, extra=extra)
            pipeline = None
        if pipeline is not None and pipeline.done:
            publish_run(ctx, run, done_from_pipeline(pipeline, run), extra | {"via": "poll"})
            semaphore_runs.stop_waiting(ctx.redis, run.run_id)
            return "published"
    if action is Action.EXPIRE:
        expire(ctx, run, now - run.started_at)
        semaphore_runs.stop_waiting(ctx.redis, run.run_id)
        log.warning("semaphore run expired", extra=extra)
        return "expired"
    return "running"
