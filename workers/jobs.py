"""rq job functions: top-level, importable, typed, with plain arguments."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import redis
import requests
from redis.exceptions import LockError
from rq import Retry
from rq.job import Job, get_current_job

from bot.core.allowlist import repo_allowed
from bot.core.pr_facts import PullRequest, Retrain
from bot.core.routing import Event
from bot.errors import (
    GitHubError,
    GitHubRateLimited,
    GitHubRetriesExhausted,
    MlgateError,
    SettingsError,
)
from bot.github import redelivery
from bot.handlers import router
from bot.runs import deploy, experiment_runs, monitor_issue, semaphore_poll
from bot.runs.context import Context
from bot.runs.deploy_decisions import DeployRequest
from bot.runs.evaluation import Evaluator, author_trusted
from bot.runs.evaluation_decisions import ended_without_verdict, reacted
from bot.runs.publication import Publication
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import RetrainRequest
from bot.runs.retrain_loop import RetrainLoop
from bot.runs.retrain_scheduler import tick
from bot.runs.sandbox import DEFAULT_MEMORY
from bot.semaphore.semaphore_client import SemaphoreClient
from bot.settings import Settings
from bot.state import deliveries, deploys, installations, running_jobs
from bot.state.deliveries import DeliveryState
from bot.state.queues import RUN_JOB_TIMEOUT
from bot.state.redis_conn import connect
from bot.state.run_locks import pr_run_lock
from workers import interruptions

log = logging.getLogger(__name__)


def _connection(settings: Settings) -> redis.Redis:
    job = get_current_job()
    return job.connection if job is not None else connect(settings.redis_url)


def handle_github_event(event_name: str, delivery_id: str) -> int:
    """Route one stored GitHub delivery to its handlers; returns how many handlers ran."""
    return _dispatch("github", event_name, delivery_id, "redeliver it")


def handle_semaphore_event(delivery_id: str) -> int:
    """Route one stored Semaphore notification as event `semaphore`; returns handlers run."""
    return _dispatch("semaphore", "semaphore", delivery_id, "rerun the pipeline")


def _dispatch(source: str, event_name: str, delivery_id: str, remedy: str) -> int:
    """The stored body of a delivery through the allowlist and the router."""
    try:
        settings = Settings.from_env()
        conn = _connection(settings)
        if deliveries.state(conn, source, delivery_id) == DeliveryState.DONE:
            # An earlier run of this job went to the end, and its worker died before rq
            # recorded so (the sweep queued it again): doing it twice would act twice.
            log.info("delivery already done", extra={"delivery_id": delivery_id})
            return 0
        body = deliveries.payload(conn, source, delivery_id)
        if body is None:
            raise MlgateError(f"the {source} payload of {delivery_id} has expired; {remedy}")
        event = Event(event_name, json.loads(body), delivery_id)
        if event.repo is not None and not repo_allowed(event.repo, settings.repo_allowlist):
            log.info("repository not in MLGATE_REPO_ALLOWLIST", extra=event.log_extra())
            return 0
        ctx = Context(settings=settings, redis=conn)
        return router.dispatch(event, ctx)
    except SettingsError:
        # A setting to fix (its message names the fix), not a passing fault: fail it once.
        _no_retry()
        raise
    except GitHubError as exc:
        if _is_permanent(exc):
            # GitHub refused the request itself (4xx): retrying would be refused again.
            _no_retry()
        raise


def _no_retry() -> None:
    """The running job fails for good on this attempt (its failure callback sees so too)."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0


def _is_permanent(exc: GitHubError) -> bool:
    transient = isinstance(exc, GitHubRetriesExhausted | GitHubRateLimited)
    return not transient and 400 <= exc.status < 500


def mark_delivery_done(job: Job, connection: redis.Redis, result: Any) -> None:
    """rq success callback: only now is the delivery done; until then it may be redelivered."""
    source, delivery_id = job.meta["source"], job.meta["delivery_id"]
    deliveries.mark(connection, source, delivery_id, DeliveryState.DONE)
    # A redelivery stores the body again; a failed delivery's body stays for inspection.
    deliveries.drop_payload(connection, source, delivery_id)


def mark_delivery_failed(
    job: Job,
    connection: redis.Redis,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """rq failure callback, called on every failed attempt: only the last marks it failed.

    A failed delivery is accepted again when GitHub (or our scheduler) redelivers it.
    """
    if job.retries_left:
        return
    deliveries.mark(connection, job.meta["source"], job.meta["delivery_id"], DeliveryState.FAILED)
    log.error(
        "delivery failed for good: %s",
        exc,
        extra={"delivery_id": job.meta["delivery_id"], "job_id": job.id},
    )


def redeliver_failed_deliveries() -> list[int]:
    """Periodic: ask GitHub to redeliver every recent delivery that never succeeded."""
    settings = Settings.from_env()
    if not settings.github_app_id:
        log.warning("GITHUB_APP_ID is not set: cannot list the App's deliveries to redeliver")
        return []
    ctx = Context(settings=settings, redis=_connection(settings))
    return redelivery.sweep(ctx.github.app_client(), ctx.redis)


def evaluate_pull_request(
    pr: dict[str, Any],
    installation_id: int,
    note: str = "",
    forced: bool = False,
    retrain: dict[str, str] | None = None,
    requested_by: str = "",
    comment_id: int | None = None,
    candidate: dict[str, Any] | None = None,
) -> str | Retry:
    """Evaluate one PR head (after a retrain, if asked) and publish comment and check.

    One run per PR at a time: a second command's run waits here for the first (a Redis lock).
    `comment_id` is the command's comment, which gets 🚀 or 😕 when the run ends; a run
    started on Semaphore ends with its pipeline, whose notification reacts. `candidate`
    (`{"matrix": id, "number": n}`) makes it a `/retrain` matrix candidate's run
    (bot/runs/experiment_runs.py): its result goes to the leaderboard, not to mlgate/quality.

    GitHub still failing after the client's own tries runs it again later, as
    MLGATE_RETRY_DELAYS says for an event's job; once no attempt is left, or on any other
    failure, its mlgate/quality check ends neutral, saying to comment /evaluate.
    """
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    request = PullRequest(**pr)
    gh = ctx.github.client(installation_id)
    evaluator = Evaluator(
        settings,
        ctx.redis,
        gh,
        # The checkout's fetch gets a token that reads this one repository, nothing more.
        token=lambda: ctx.github.checkout_token(installation_id, request.repo),
        installation_id=installation_id,
    )
    publisher = Publisher(gh, ctx.redis)
    lock = pr_run_lock(ctx.redis, request.repo, request.number, RUN_JOB_TIMEOUT)
    job, execution = get_current_job(), running_jobs.current_execution()
    # The run's started entry as the lock's token: whoever takes back this run from a dead
    # worker frees exactly this lock (workers/interruptions.py), never another run's.
    token = f"{job.id}:{execution}" if job is not None and execution else uuid.uuid4().hex
    if not lock.acquire(token=token):
        # Another run of this PR held the lock all along; it publishes the PR's checks.
        publisher.publish(reacted(Publication(request.repo, outcome="error"), comment_id))
        raise LockError(f"PR {request.repo}#{request.number} stayed locked by another run")
    if candidate is not None:
        try:
            return _run_candidate(evaluator, publisher, request, installation_id, candidate)
        finally:
            lock.release()
    try:
        publication = evaluator.evaluate(
            request,
            trusted=lambda: author_trusted(gh, request, ctx.redis),
            note=note or None,
            forced=forced,
            retrain=Retrain(retrain, requested_by) if retrain is not None else None,
            comment_id=comment_id,
            requested_by=requested_by,
        )
        outcome = publisher.publish(publication)
    except (GitHubRetriesExhausted, GitHubRateLimited) as exc:
        later = _retry_later(job, settings.retry_delays, exc)
        if later is not None:
            return later
        _end_without_verdict(publisher, job, request, comment_id, exc, github=True)
        raise
    except BaseException as exc:
        _end_without_verdict(publisher, job, request, comment_id, exc, github=False)
        raise
    finally:
        # Released after the run's last word, so that no later run's verdict comes before it.
        lock.release()
    log.info(
        "evaluated: %s",
        outcome,
        extra={"repo": request.repo, "pr": request.number, "sha": request.head_sha},
    )
    return outcome


def _run_candidate(
    evaluator: Evaluator,
    publisher: Publisher,
    request: PullRequest,
    installation_id: int,
    candidate: dict[str, Any],
) -> str:
    matrix_id, number = str(candidate["matrix"]), int(candidate["number"])
    try:
        publication = experiment_runs.run_candidate(
            evaluator,
            request,
            installation_id,
            matrix_id,
            number,
            trusted=lambda: author_trusted(evaluator.gh, request, evaluator.conn),
        )
    except Exception as exc:
        # The matrix goes on without this candidate, which shows why it has no result.
        why = f"mlgate failed while running it ({type(exc).__name__}); retrain again"
        publisher.publish(
            experiment_runs.abandon(evaluator, request, installation_id, matrix_id, number, why)
        )
        raise
    return publisher.publish(publication)


def _retry_later(job: Job | None, delays: tuple[int, ...], exc: GitHubError) -> Retry | None:
    """rq's Retry of the running evaluation after GitHub kept failing it, while
    MLGATE_RETRY_DELAYS allows one more attempt, not before a rate limit's retry-after;
    None when none is left."""
    done = (job.number_of_retries or 0) if job is not None else 0
    if job is None or done >= len(delays):
        return None
    waits = list(delays)
    if isinstance(exc, GitHubRateLimited):
        waits[done] = max(waits[done], math.ceil(exc.retry_after))
    log.warning(
        "GitHub kept failing the run; it runs again in %d s: %s",
        waits[done],
        exc,
        extra={"job_id": job.id, "attempt": done + 1, "attempts": len(delays) + 1},
    )
    return Retry(max=len(delays), interval=waits)


def _end_without_verdict(
    publisher: Publisher,
    job: Job | None,
    pr: PullRequest,
    comment_id: int | None,
    exc: BaseException,
    *,
    github: bool,
) -> None:
    """The failed run's last word: its check ends neutral (never left queued) and the command
    that asked hears so. GitHub may still be failing: the job's own error stays the one kept."""
    attempts = (job.number_of_retries or 0) + 1 if job is not None else 1
    shown = ended_without_verdict(pr, github=github, attempts=attempts)
    try:
        publisher.publish(reacted(shown, comment_id))
    except Exception as failed:
        log.warning(
            "could not end the failed run's check: %s",
            failed,
            extra={"repo": pr.repo, "pr": pr.number, "sha": pr.head_sha, "error": str(exc)},
        )


def record_baseline(
    repo: str, sha: str, clone_url: str, installation_id: int, paths: list[str] | None
) -> bool:
    """Record a default-branch commit's metrics; False when the push changed nothing relevant."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    evaluator = Evaluator(
        settings,
        ctx.redis,
        ctx.github.client(installation_id),
        token=lambda: ctx.github.checkout_token(installation_id, repo),
    )
    metrics = evaluator.record_push_baseline(repo, sha, clone_url, time.time(), paths)
    log.info("baseline %s", "recorded" if metrics is not None else "skipped", extra={"repo": repo})
    return metrics is not None


def recover_interrupted_jobs() -> list[str]:
    """`mlgate scheduler`'s sweep, once: queue again the jobs of work horses that died without
    a word (a worker killed, a machine lost); an evaluation's check shows so and its PR lock
    is freed."""
    settings = Settings.from_env()
    taken = interruptions.sweep(_connection(settings), settings)
    if taken:
        log.warning("interrupted jobs queued again", extra={"jobs": taken})
    return taken


def poll_semaphore_runs(now: float | None = None) -> dict[str, int]:
    """Periodic: publish Semaphore runs whose notification never came, expire stale ones."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    with requests.Session() as session:
        try:
            client: SemaphoreClient | None = SemaphoreClient(
                settings.semaphore_api_url, settings.semaphore_api_token, session=session
            )
        except SettingsError:
            client = None  # runs still expire; nothing can be asked
        counts = semaphore_poll.sweep(ctx, client, now)
    log.info("semaphore runs swept", extra=dict(counts))
    return dict(counts)


def deploy_with_runner(
    request: dict[str, Any],
    argv: list[str],
    network: bool = True,
    memory: int = DEFAULT_MEMORY,
) -> str:
    """Run `deploy.run` for an approved deploy on this worker (bot/runs/deploy.run_locally),
    in the sandbox with the step's `network` and `memory`."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    deploy_request = DeployRequest(**request)
    installation_id = deploy_request.installation_id
    assert installation_id is not None, "a deploy starts from an installation's event"
    gh = ctx.github.client(installation_id)
    token = ctx.github.checkout_token(installation_id, deploy_request.repo)
    deployed = deploy.run_locally(
        settings, gh, deploy_request, argv, token, network=network, memory=memory
    )
    if deployed.outcome == deploy.SANDBOX_MISSING:
        # Nothing ran: once the worker has bubblewrap, approving again deploys.
        deploys.release_deploy(ctx.redis, deploy_request.token)
    return Publisher(gh, ctx.redis).publish(deployed)


def check_production(repo: str, env: str) -> str:
    """Judge an environment's live uploads and open, update or close its issue."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    installation = installations.installation_of(ctx.redis, repo)
    if installation is None:
        installation = ctx.github.installation_for_repo(repo)
    return monitor_issue.check_production(ctx.github.client(installation), ctx.redis, repo, env)


def retrain_default_branch(request: dict[str, Any]) -> str:
    """Retrain a default-branch commit and open (or move) its retrain PR; returns the outcome
    (bot/runs/retrain_loop.py). Queued by `start_retrain`, never twice for one retrain."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    retrain = RetrainRequest.from_job(request)
    installation_id = retrain.installation_id
    loop = RetrainLoop(
        settings,
        ctx.redis,
        ctx.github.client(installation_id),
        token=lambda: ctx.github.installation_token(installation_id),
    )
    return loop.run(retrain)


def tick_retrain_schedules(now: float | None = None) -> list[str]:
    """Periodic: queue the scheduled retrains that came due (`now`: seconds since the epoch,
    default the clock); returns the repositories queued."""
    settings = Settings.from_env()
    ctx = Context(settings=settings, redis=_connection(settings))
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    queued = tick(ctx.redis, ctx.github, moment)
    log.info("retrain schedules ticked", extra={"queued": len(queued)})
    return queued
