"""Semaphore pipeline-done notifications: publish the evaluation or retrain a pipeline ran."""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.core.config import load_config
from bot.core.pr_facts import PullRequest
from bot.core.routing import Event, Router
from bot.errors import RepoConfigError
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs import deploy
from bot.runs.context import Context
from bot.runs.evaluation import Evaluator
from bot.runs.head_records import HeadRecords
from bot.runs.pipeline_results import publish, publish_run
from bot.runs.publisher import Publisher
from bot.runs.retrain_decisions import LOOP_RUN
from bot.semaphore.pipelines import PipelineDone, parse_pipeline_done, same_file
from bot.state import deploys
from bot.state.installations import installed_repositories
from bot.state.semaphore_runs import claim, find_run, release

log = logging.getLogger(__name__)
router = Router()


@router.register("semaphore")
def pipeline_done(event: Event, ctx: Context) -> None:
    done = parse_pipeline_done(event.payload)
    extra = event.log_extra()
    if done is None:
        log.info("semaphore notification ignored: not a done pipeline", extra=extra)
        return
    run, known = find_run(ctx.redis, done.pipeline_id, done.workflow_id)
    if run is not None and run.kind == LOOP_RUN:
        # A retrain of the default branch is no commit's pipeline a deploy may promote.
        publish_run(ctx, run, done, extra)
        return
    if _deploy_notification(ctx, done, extra):
        return
    if run is None and known:
        # Same workflow, another pipeline: a promotion (a deploy) or a partial rerun.
        log.info("semaphore: another pipeline of a workflow mlgate started", extra=extra)
        return
    if run is not None:
        publish_run(ctx, run, done, extra)
        return
    if event.repo is not None and done.pr_number is not None and done.head_sha is not None:
        found = _installed(ctx, event.repo)
        if found is None:
            log.info("semaphore: pipeline of a repository mlgate is not installed on", extra=extra)
            return
        repo, installation = found
        gh = ctx.github.client(installation)
        pr = _passive(ctx, gh, repo, done.pr_number, done.head_sha, done)
    else:
        log.info("semaphore: not a pull-request pipeline mlgate knows", extra=extra)
        return
    if pr is None:
        log.info("semaphore: not the repository's evaluation pipeline", extra=extra)
        return
    publish(ctx, gh, installation, pr, done, None, extra)


def _deploy_notification(ctx: Context, done: PipelineDone, extra: dict[str, object]) -> bool:
    """A promoted pipeline ends its GitHub Deployment (True: nothing else to do); any other
    pipeline is remembered for its commit, and starts a deploy that waited for it."""
    promoted = deploy.promoted_pipeline(ctx.redis, done)
    if promoted is not None:
        if claim(ctx.redis, done.pipeline_id):
            installation = promoted["installation_id"]
            installation = installation or ctx.github.installation_for_repo(promoted["repo"])
            try:
                deploy.finish(ctx.github.client(installation), promoted, done)
            except BaseException:
                release(ctx.redis, done.pipeline_id)
                raise
            log.info("semaphore: deployment finished: %s", done.result, extra=extra)
        return True
    commit = deploy.record_pipeline(ctx.redis, done)
    waiting = deploy.take_pending(ctx.redis, done.repo, commit) if done.repo and commit else None
    if waiting is not None:
        pipeline = deploys.pipeline_for(ctx.redis, waiting.repo, waiting.sha)
        assert pipeline is not None  # recorded just above
        installation = waiting.installation_id or ctx.github.installation_for_repo(waiting.repo)
        gh = ctx.github.client(installation)
        started = deploy.resume(ctx.settings, ctx.redis, gh, waiting, pipeline)
        log.info("semaphore: a waiting deploy: %s", started.outcome, extra=extra)
        shown = None
        try:
            # The PR's comment lists the deploy in its audit trail.
            pull = gh.get_pull(waiting.repo, waiting.number)
            pr = PullRequest.from_api(pull, pull["base"]["repo"])
            if pr.head_sha == waiting.head_sha:
                records = HeadRecords(ctx.redis, pr.repo, pr.number, list(started.audit))
                evaluator = Evaluator(ctx.settings, ctx.redis, gh, token=lambda: "")
                shown = evaluator.republish(pr, records)
        finally:
            # The deploy happened: its audit entry is written even if the comment is not.
            Publisher(gh, ctx.redis).publish(started if shown is None else started.then(shown))
    return False


def _installed(ctx: Context, slug: str) -> tuple[str, int] | None:
    """GitHub's name of the repository Semaphore calls `slug`, and its installation, as the
    installation events recorded them: no API call for the pipelines of other repositories."""
    wanted = slug.lower()  # GitHub names are case-insensitive; Semaphore keeps its own case
    for name, installation in installed_repositories(ctx.redis).items():
        if name.lower() == wanted:
            return name, installation
    return None


def _passive(
    ctx: Context, gh: GitHubClient, repo: str, number: int, head_sha: str, done: PipelineDone
) -> PullRequest | None:
    """The PR of a pipeline Semaphore ran by itself, if it is the repository's evaluation
    pipeline (`semaphore.pipeline_file` of its project); None for any other pipeline."""
    pull = gh.get_pull(repo, number)
    pr = PullRequest.from_api(pull, pull["base"]["repo"])
    try:
        config = load_config(RepoFiles(gh, ctx.redis, pr.repo).read, pr.config_ref)
    except RepoConfigError:
        return None  # the PR's own evaluation says so, on mlgate/config
    wanted = config.semaphore
    if wanted.pipeline_file is None or not same_file(wanted.pipeline_file, done.pipeline_file):
        return None
    if wanted.project_id is not None and done.project_id and wanted.project_id != done.project_id:
        return None
    # The pipeline ran for its head, which may no longer be the PR's: publishing checks that.
    return replace(pr, head_sha=head_sha)
