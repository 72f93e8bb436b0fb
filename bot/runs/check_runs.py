"""mlgate's check runs: one per (repository, head sha, name), created once and then updated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from bot.core.report import Annotation, annotation_batches
from bot.github.github_client import GitHubClient
from bot.state import check_ids

QUALITY_CHECK = "mlgate/quality"
CONFIG_CHECK = "mlgate/config"
DEPLOY_CHECK = "mlgate/deploy"

# GitHub allows 3 actions; label and identifier at most 20 characters, description 40.
QUALITY_ACTIONS = (
    {"label": "Re-evaluate", "identifier": "evaluate", "description": "Run the evaluation again"},
    {"label": "Retrain", "identifier": "retrain", "description": "Retrain with default parameters"},
)


class Checks:
    """Creates and updates one repository's mlgate check runs, keyed by head sha and name."""

    def __init__(self, gh: GitHubClient, conn: redis.Redis, repo: str) -> None:
        self.gh, self.conn, self.repo = gh, conn, repo

    def _actions(self, name: str) -> list[dict[str, str]]:
        return [dict(a) for a in QUALITY_ACTIONS] if name == QUALITY_CHECK else []

    def _upsert(self, name: str, sha: str, fields: dict[str, Any]) -> int:
        """Update the check of this sha while it runs; a new run after completion is a new
        check run, as GitHub's re-run does (a completed check run cannot be reopened)."""
        stored = check_ids.check_id(self.conn, self.repo, sha, name)
        completed = fields["status"] == "completed"
        if stored is not None:
            check_id, was_completed = stored
            if not was_completed or completed:
                self.gh.update_check_run(self.repo, check_id, **fields)
                check_ids.remember(self.conn, self.repo, sha, name, check_id, completed)
                return check_id
        created = self.gh.create_check_run(self.repo, name, sha, **fields)
        check_ids.remember(self.conn, self.repo, sha, name, int(created["id"]), completed)
        return int(created["id"])

    def start(
        self,
        name: str,
        sha: str,
        step: str,
        *,
        summary: str | None = None,
        details_url: str | None = None,
    ) -> None:
        """The check in progress, its summary naming the current step (or saying `summary`);
        `details_url` links where the work happens (a Semaphore workflow)."""
        fields: dict[str, Any] = {
            "status": "in_progress",
            "output": {"title": f"mlgate: {step}", "summary": summary or f"Current step: {step}."},
            "actions": self._actions(name),
        }
        if details_url:
            fields["details_url"] = details_url
        self._upsert(name, sha, fields)

    def complete(
        self,
        name: str,
        sha: str,
        conclusion: str,
        title: str,
        summary: str,
        *,
        annotations: Sequence[Annotation] = (),
        details_url: str | None = None,
        actions: Sequence[dict[str, str]] | None = None,
    ) -> int:
        """Complete the check; annotations go 50 per request, as GitHub appends them."""
        batches = annotation_batches(annotations) or [[]]
        output: dict[str, Any] = {"title": title, "summary": summary}
        fields: dict[str, Any] = {
            "status": "completed",
            "conclusion": conclusion,
            "output": output | ({"annotations": batches[0]} if batches[0] else {}),
            "actions": list(actions) if actions is not None else self._actions(name),
        }
        if details_url:
            fields["details_url"] = details_url
        check_id = self._upsert(name, sha, fields)
        for batch in batches[1:]:
            self.gh.update_check_run(self.repo, check_id, output=output | {"annotations": batch})
        return check_id
