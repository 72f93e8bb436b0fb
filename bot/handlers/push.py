"""Default-branch pushes: the commit's baseline, the branch's head, a retrain on new data."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.core.changes import classify
from bot.core.config import RepoConfig, load_config
from bot.core.routing import Event, Router
from bot.errors import GitHubError, RepoConfigError
from bot.github.repo_files import RepoFiles
from bot.runs.context import Context
from bot.runs.retrain_loop import start_retrain
from bot.state import default_heads, queues
from bot.state.default_heads import DefaultHead

log = logging.getLogger(__name__)
router = Router()

BASELINE = "baseline"
# A push's `before` when it created the branch: there is nothing to compare with.
NO_COMMIT = "0" * 40


@router.register("push")
def push(event: Event, ctx: Context) -> None:
    payload = event.payload
    repository = payload["repository"]
    default = repository.get("default_branch") or repository.get("master_branch")
    if payload.get("deleted") or payload.get("ref") != f"refs/heads/{default}":
        return
    repo = str(repository["full_name"])
    sha = str(payload["after"])
    # Which paths the push touched: webhook payloads list at most 20 commits, so a larger
    # push (or one listing none) is checked as a whole.
    commits = payload.get("commits") or []
    paths: list[str] | None = None
    if 0 < len(commits) < 20:
        paths = sorted(
            {
                p
                for c in commits
                for kind in ("added", "modified", "removed")
                for p in c.get(kind, [])
            }
        )
    config: RepoConfig | None = None
    unread: GitHubError | None = None
    previous: str | None = None
    if event.installation_id is not None:
        previous = remember_head(event, ctx, str(default), sha)
        try:
            # Read before the baseline job is queued, so that it finds the file cached.
            config = load_config(RepoFiles(ctx.client(event), ctx.redis, repo).read, sha)
        except RepoConfigError:
            pass  # the baseline job logs it; PRs show it as mlgate/config
        except GitHubError as exc:
            unread = exc
    queues.enqueue_run(
        ctx.redis,
        BASELINE,
        queues.RECORD_BASELINE,
        repo,
        None,
        sha,
        repo=repo,
        sha=sha,
        clone_url=str(repository.get("clone_url") or ""),
        installation_id=event.installation_id,
        paths=paths,
    )
    if unread is not None:
        raise unread  # the delivery is retried; the baseline stays queued once
    if config is not None and config.retrain.on_data:
        retrain_on_data(event, ctx, config, sha, paths, previous)


def remember_head(event: Event, ctx: Context, branch: str, sha: str) -> str | None:
    """Record the default branch's new head, where a scheduled or monitoring retrain starts;
    returns the head it replaces."""
    repository = event.payload["repository"]
    assert event.installation_id is not None
    head = DefaultHead(
        branch,
        sha,
        event.installation_id,
        clone_url=str(repository.get("clone_url") or ""),
        html_url=str(repository.get("html_url") or ""),
    )
    previous = default_heads.record(ctx.redis, str(repository["full_name"]), head)
    return previous.sha if previous is not None else None


def retrain_on_data(
    event: Event,
    ctx: Context,
    config: RepoConfig,
    sha: str,
    paths: Sequence[str] | None,
    previous: str | None,
) -> None:
    """Queue a retrain of the pushed commit when it changed files under `triggers.data`; a
    queued retrain of the `previous` head is moot."""
    payload = event.payload
    repo = str(payload["repository"]["full_name"])
    if paths is None:
        before = str(payload.get("before") or NO_COMMIT)
        if before == NO_COMMIT:
            return  # the branch was created: no data changed, it all arrived
        compared = ctx.client(event).compare(repo, before, sha)
        paths = [str(f["filename"]) for f in compared.get("files") or []]
    data = classify(paths, config.triggers).data
    if not data:
        return
    sender = (payload.get("sender") or {}).get("login") or ""
    start_retrain(
        ctx.redis,
        repo,
        "data",
        sha=sha,
        user=str(sender),
        data_paths=data,
        supersedes=previous,
    )
    log.info("retrain on new data queued", extra={**event.log_extra(), "sha": sha})
