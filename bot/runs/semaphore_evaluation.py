"""Evaluations Semaphore runs: starting a PR head's pipeline, and reading its done pipeline."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, replace

import redis
import requests

from bot.core.comparison import RunOutcome, compare
from bot.core.config import CONFIG_PATH, RepoConfig
from bot.core.evaluation_result import Evaluation
from bot.core.pr_facts import PullRequest, Retrain
from bot.errors import DvcFileError, MetricsFileError, SemaphoreError, SettingsError
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.evaluation_decisions import (
    RETRAIN,
    SEMAPHORE_STARTED,
    SEMAPHORE_UNCONFIGURED,
    run_notes,
)
from bot.runs.publication import CheckOutput, Publication, step
from bot.semaphore.pipelines import (
    UPLOAD_COMMAND,
    PipelineDone,
    describe_failure,
    failed_from_pipeline,
    fallback_workflow_url,
    workflow_parameters,
)
from bot.semaphore.semaphore_client import SemaphoreClient, pull_request_reference
from bot.settings import Settings
from bot.state import audit
from bot.state.baselines import baseline, trend
from bot.state.semaphore_runs import SemaphoreRun, record_run
from bot.state.uploads import uploaded_metrics

log = logging.getLogger(__name__)


def _quality(pr: PullRequest, outcome: str, conclusion: str, title: str, text: str) -> Publication:
    check = CheckOutput(QUALITY_CHECK, pr.head_sha, title, text, conclusion)
    return Publication(pr.repo, pr.number, outcome, checks=(check,))


def start(
    settings: Settings,
    conn: redis.Redis,
    pr: PullRequest,
    config: RepoConfig,
    kind: str,
    retrain: Retrain | None,
    *,
    installation_id: int | None,
    note: str,
    comment_id: int | None,
    requested_by: str,
) -> Publication:
    """Start the evaluation (or retrain) pipeline on Semaphore and leave the check waiting.

    The job ends here; the pipeline's done notification (or the poll) publishes the result.
    """
    pipeline_file = (
        config.retrain.pipeline_file if kind == RETRAIN else config.semaphore.pipeline_file
    )
    project_id = config.semaphore.project_id
    if project_id is None or pipeline_file is None:
        # Config validation requires both for these settings; this guards a default config.
        return _quality(
            pr,
            SEMAPHORE_UNCONFIGURED,
            "neutral",
            "Semaphore pipeline not configured",
            f"`{CONFIG_PATH}` names no `semaphore.project_id` or pipeline file to run.",
        )
    run_id = uuid.uuid4().hex
    parameters = workflow_parameters(
        retrain.parameters if retrain is not None else {},
        run_id=run_id,
        repo=pr.repo,
        pr=pr.number,
        sha=pr.head_sha,
    )
    with requests.Session() as session:
        try:
            client = SemaphoreClient(
                settings.semaphore_api_url, settings.semaphore_api_token, session=session
            )
        except SettingsError as exc:
            return _quality(
                pr,
                SEMAPHORE_UNCONFIGURED,
                "neutral",
                "Semaphore is not configured",
                f"This repository runs `{pipeline_file}` on Semaphore, but mlgate cannot "
                f"start it: {exc}. Nothing was run.",
            )
        try:
            started = client.run_workflow(
                project_id,
                pull_request_reference(pr.number),
                pr.head_sha,
                pipeline_file,
                parameters,
            )
        except SemaphoreError as exc:
            return _quality(
                pr,
                "error",
                "failure",
                "Semaphore did not start the pipeline",
                f"Starting `{pipeline_file}` for {pr.short_sha} failed: {exc}",
            )
        url = client.workflow_url(started.workflow_id)
    record_run(
        conn,
        SemaphoreRun(
            run_id=run_id,
            kind=kind,
            repo=pr.repo,
            number=pr.number,
            head_sha=pr.head_sha,
            base_sha=pr.base_sha,
            workflow_id=started.workflow_id,
            pipeline_id=started.pipeline_id,
            installation_id=installation_id,
            started_at=time.time(),
            pull=asdict(pr),
            parameters=dict(retrain.parameters) if retrain is not None else {},
            requested_by=requested_by,
            comment_id=comment_id,
            note=note,
            workflow_url=url,
        ),
    )
    log.info(
        "semaphore workflow started",
        extra={"repo": pr.repo, "pr": pr.number, "sha": pr.head_sha, "run_id": run_id},
    )
    waiting = step(
        QUALITY_CHECK,
        pr.head_sha,
        "waiting for Semaphore",
        summary=f"Waiting for the Semaphore pipeline `{pipeline_file}` (workflow "
        f"`{started.workflow_id}`, run `{run_id}`) of {pr.short_sha}; the result is "
        "published when the pipeline is done.",
        details_url=url,
    )
    return Publication(pr.repo, pr.number, SEMAPHORE_STARTED, checks=(waiting,))


def pipeline_evaluation(
    settings: Settings,
    conn: redis.Redis,
    gh: GitHubClient,
    files: RepoFiles,
    pr: PullRequest,
    config: RepoConfig,
    done: PipelineDone,
    run: SemaphoreRun | None,
) -> tuple[Evaluation, str | None]:
    """What a done pipeline of `pr`'s head found, and its workflow's page: the run mlgate
    started, else (`run` None) a pipeline Semaphore ran by itself. Passed: the metrics
    uploaded for it against the base; failed or stopped: its failed blocks and jobs."""
    approval = audit.decision(conn, "approval", pr.repo, pr.number, pr.head_sha)
    retrain = None
    if run is not None and run.kind == RETRAIN:
        retrain = Retrain(run.parameters, run.requested_by)
    notes = run_notes(pr, run.note if run is not None else None, approval, retrain)
    url = run.workflow_url if run is not None else None
    url = url or _workflow_url(settings, done)
    if not done.passed:
        failure = describe_failure(done.result, _failed(settings, done))
        link = [f"Semaphore workflow: {url}"] if url else []
        evaluation = Evaluation(
            pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=failure, notes=notes + link
        )
        return evaluation, url
    run_id = run.run_id if run is not None else None
    uploaded = uploaded_metrics(conn, pr.repo, pr.head_sha, run_id)
    what = f"run `{run_id}`" if run_id else f"any run of {pr.short_sha}"
    upload = UPLOAD_COMMAND.format(repo=pr.repo)

    def measure() -> RunOutcome:
        if not uploaded:
            return RunOutcome(
                {},
                None,
                f"A job of the pipeline uploads its metrics file with:\n{upload}",
                failure=f"no metrics were uploaded for {what} of the Semaphore pipeline",
            )
        return RunOutcome(uploaded, None, "")

    changed = [f["filename"] for f in gh.list_pull_files(pr.repo, pr.number)]
    try:
        evaluation = compare(
            files.read,
            config,
            changed,
            pr.base_sha,
            pr.head_sha,
            base_ref=pr.base_ref,
            baseline=baseline(conn, pr.repo, pr.base_sha),
            measure=measure,
        )
    except (DvcFileError, MetricsFileError) as exc:
        evaluation = Evaluation(pr.head_sha, pr.base_sha, base_ref=pr.base_ref, error=str(exc))
    if not uploaded:
        notes.append(
            f"Nothing was uploaded to mlgate for {pr.short_sha}: the pipeline's job runs "
            f"{upload} (docs/semaphore.md in mlgate)."
        )
    elif evaluation.error is None:
        evaluation = replace(evaluation, trend=trend(conn, pr.repo))
    return replace(evaluation, notes=notes), url


def _semaphore(settings: Settings, session: requests.Session) -> SemaphoreClient | None:
    try:
        return SemaphoreClient(
            settings.semaphore_api_url, settings.semaphore_api_token, session=session
        )
    except SettingsError:
        return None


def _workflow_url(settings: Settings, done: PipelineDone) -> str | None:
    with requests.Session() as session:
        client = _semaphore(settings, session)
        if client is not None:
            return client.workflow_url(done.workflow_id)
    return fallback_workflow_url(done.organization, done.workflow_id)


def _failed(settings: Settings, done: PipelineDone) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Failed blocks and jobs, as the API describes them; the notification's own list when
    the API is not configured or does not answer (the result is known either way)."""
    with requests.Session() as session:
        client = _semaphore(settings, session)
        if client is None:
            return done.failed
        try:
            pipeline = client.describe_pipeline(done.pipeline_id, detailed=True)
        except SemaphoreError as exc:
            log.warning("describing pipeline failed: %s", exc, extra={"run": done.pipeline_id})
            return done.failed
    return failed_from_pipeline(pipeline) or done.failed
