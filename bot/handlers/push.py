"""Pushes to the default branch record that commit's metrics: the trend and PRs' baseline."""

from __future__ import annotations

from bot.core.routing import Event, Router
from bot.runs.context import Context
from bot.state import queues

router = Router()

BASELINE = "baseline"


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
