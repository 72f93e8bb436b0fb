"""Queueing a PR's evaluation on a `runs` worker, with `mlgate/quality` shown queued at once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bot.core.pr_facts import PullRequest
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.publication import Publication, QueuedRun, step
from bot.state import queues

EVALUATE = "evaluate"


def queued(
    pr: PullRequest, installation_id: int, note: str = "", kind: str = EVALUATE, **job: Any
) -> Publication:
    """`mlgate/quality` shown queued, and the run for a `runs` worker (queued after it).

    Runs of one `kind` for one head are queued once; a command passes a kind of its own, so
    that two commands in a row queue one behind the other.
    """
    fields = {"pr": asdict(pr), "installation_id": installation_id, "note": note, **job}
    run = QueuedRun(kind, queues.EVALUATE_PULL_REQUEST, pr.head_sha, fields)
    check = step(QUALITY_CHECK, pr.head_sha, "queued")
    return Publication(pr.repo, pr.number, "queued", checks=(check,), runs=(run,))
