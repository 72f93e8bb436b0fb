"""mlgate's check runs: one per (repository, head sha, name), created once and then updated."""

from __future__ import annotations

from typing import Any

import redis

from bot.core.report import annotation_batches
from bot.github.github_client import GitHubClient
from bot.runs.publication import CheckOutput
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

    def _actions(self, check: CheckOutput) -> list[dict[str, str]]:
        if check.actions is not None:
            return [dict(a) for a in check.actions]
        return [dict(a) for a in QUALITY_ACTIONS] if check.name == QUALITY_CHECK else []

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

    def show(self, check: CheckOutput) -> int:
        """Show the check as `check` says: in progress, or completed with its conclusion.

        Annotations go 50 per request, as GitHub appends them; `details_url` links where the
        work happens (a Semaphore workflow).
        """
        output: dict[str, Any] = {"title": check.title, "summary": check.summary}
        fields: dict[str, Any] = {"status": "in_progress", "output": output}
        batches: list[list[dict[str, Any]]] = [[]]
        if check.conclusion is not None:
            batches = annotation_batches(check.annotations) or [[]]
            fields = {
                "status": "completed",
                "conclusion": check.conclusion,
                "output": output | ({"annotations": batches[0]} if batches[0] else {}),
            }
        fields["actions"] = self._actions(check)
        if check.details_url:
            fields["details_url"] = check.details_url
        check_id = self._upsert(check.name, check.sha, fields)
        for batch in batches[1:]:
            self.gh.update_check_run(self.repo, check_id, output=output | {"annotations": batch})
        return check_id
