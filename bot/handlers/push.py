"""Pushes to the default branch record that commit's metrics (the trend and PRs' baseline),
remember the branch's head, and retrain on new data where `retrain.on_data` asks for it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.core.changes import classify
from bot.core.config import load_config
from bot.core.routing import Event, Router
from bot.errors import RepoConfigError
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
    queues.enqueue_run(
        ctx.redis,
        BASELINE,
        queues.RECORD_BASELINE,
        str(repository["full_name"]),
        None,
        sha,
        repo=str(repository["full_name"]),
        sha=sha,
        clone_url=str(repository.get("clone_url") or ""),
        installation_id=event.installation_id,
        paths=paths,
    )
    if event.installation_id is not None:
        retrain_on_data(event, ctx, str(default), sha, paths)


def retrain_on_data(
    event: Event, ctx: Context, branch: str, sha: str, paths: Sequence[str] | None
) -> None:
    """Remember the new head; retrain it when it changed data and `retrain.on_data` is set."""
    payload = event.payload
    repository = payload["repository"]
    repo = str(repository["full_name"])
    assert event.installation_id is not None
    head = DefaultHead(
        branch,
        sha,
        event.installation_id,
        clone_url=str(repository.get("clone_url") or ""),
        html_url=str(repository.get("html_url") or ""),
    )
    previous = default_heads.record(ctx.redis, repo, head)
    gh = ctx.client(event)
    files = RepoFiles(gh, ctx.redis, repo)
    try:
        # Read at the pushed sha and cached: the baseline job reads the same file from Redis.
        config = load_config(files.read, sha)
    except RepoConfigError:
        return  # the baseline job logs it; PRs show it as mlgate/config
    if not config.retrain.on_data:
        return
    if paths is None:
        before = str(payload.get("before") or NO_COMMIT)
        if before == NO_COMMIT:
            return  # the branch was created: no data changed, it all arrived
        compared = gh.compare(repo, before, sha)
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
        supersedes=previous.sha if previous is not None else None,
    )
    log.info("retrain on new data queued", extra={**event.log_extra(), "sha": sha})
