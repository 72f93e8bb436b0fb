"""Retrain-loop decisions without I/O: the branch, the PR's title and texts, what to publish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.core.markdown_escape import clip, code, one_line
from bot.core.report import log_details
from bot.core.retrain_outputs import ChangedFile
from bot.runs.publication import AuditRecord, CheckOutput, Publication
from bot.state import audit

RETRAIN_CHECK = "mlgate/retrain"
RETRAIN_LABEL = "mlgate:retrain"
BRANCH_PREFIX = "mlgate/retrain-"
# What starts a retrain of the default branch, as the audit log and the PR name it.
TRIGGERS = {
    "data": "data push",
    "schedule": "schedule",
    "monitoring": "monitoring",
    "command": "command",
}
# Outcomes of one retrain, for logs, tests and the claim that makes it happen once.
OPENED, MOVED, UNCHANGED, FAILED = "opened", "moved", "unchanged", "failed"
ALREADY_DONE, OWN_MERGE = "already-done", "own-merge"
SUPERSEDED = "superseded"
# `runner: semaphore`: the pipeline was started; its done notification (or the poll) ends it.
STARTED = "started"
# The kind of the Semaphore run of a retrain of the default branch (bot/state/semaphore_runs).
LOOP_RUN = "retrain-loop"
# The variable that names the branch a retrain pipeline pushes its outputs to (DESIGN).
BRANCH_VARIABLE = "MLGATE_RETRAIN_BRANCH"
# A failed retrain's check shows this much of the log: the end, where errors are.
CHECK_LOG_LINES = 60
# GitHub's check run summary holds at most 65535 characters.
CHECK_SUMMARY_LIMIT = 65_000
# A PR lists at most this many of the paths that caused a retrain.
LISTED_PATHS = 5
SHORT = 7
AUDIT_USER = "mlgate"


@dataclass(frozen=True)
class RetrainRequest:
    """One retrain of default-branch commit `sha`, and why: `trigger` is a key of TRIGGERS;
    `occasion` tells retrains of one commit and trigger apart (a schedule's fire time);
    `user` pushed or asked; `data_paths` are the data files a push changed."""

    repo: str
    sha: str
    trigger: str
    installation_id: int
    default_branch: str
    occasion: str = ""
    clone_url: str = ""
    html_url: str = ""
    user: str = ""
    schedule: str = ""
    data_paths: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"retrain trigger {self.trigger!r} is not one of {sorted(TRIGGERS)}")

    @classmethod
    def from_job(cls, fields: dict[str, Any]) -> RetrainRequest:
        """The request from a job's plain arguments (lists where the request has tuples)."""
        return cls(**{**fields, "data_paths": tuple(fields.get("data_paths") or ())})

    @property
    def short_sha(self) -> str:
        return self.sha[:SHORT]

    @property
    def label(self) -> str:
        """The trigger as the audit log shows it: `data push`, `schedule 2024-06-03T03:00Z`."""
        name = TRIGGERS[self.trigger]
        return f"{name} {self.occasion}" if self.trigger == "schedule" and self.occasion else name


def branch_name(sha: str) -> str:
    """The branch a retrain of `sha` starts: `mlgate/retrain-<short sha>`."""
    return BRANCH_PREFIX + sha[:SHORT]


def is_retrain_branch(ref: str) -> bool:
    return ref.startswith(BRANCH_PREFIX)


def title(request: RetrainRequest) -> str:
    """The retrain PR's title."""
    if request.trigger == "schedule":
        day = request.occasion[:10] or datetime.now(UTC).strftime("%Y-%m-%d")
        return f"Scheduled retrain ({day})"
    if request.trigger == "data":
        return f"Retrain on new data ({request.short_sha})"
    if request.trigger == "monitoring":
        return f"Retrain after a monitoring breach ({request.short_sha})"
    return f"Retrain ({request.short_sha})"


def commit_message(request: RetrainRequest, changes: Sequence[ChangedFile]) -> str:
    paths = ", ".join(c.path for c in changes)
    return (
        f"{title(request)}\n\n"
        f"mlgate retrained {request.default_branch} at {request.sha} ({request.label}) and "
        f"commits the outputs that changed: {clip(one_line(paths), 600)}\n"
    )


def _commit_link(request: RetrainRequest) -> str:
    shown = code(request.short_sha)
    if request.html_url:
        return f"[{shown}]({request.html_url.rstrip('/')}/commit/{request.sha})"
    # GitHub links a full sha in a PR body or comment by itself.
    return f"{shown} ({request.sha})"


def _user(login: str) -> str:
    # Logins are letters, digits and hyphens (and `[bot]`); anything else is not mentioned.
    plain = login.replace("[bot]", "")
    return f"@{login}" if plain and all(c.isalnum() or c == "-" for c in plain) else code(login)


def reason(request: RetrainRequest) -> str:
    """Why the default branch was retrained, as a clause of a sentence."""
    if request.trigger == "data":
        listed = ", ".join(code(p, 120) for p in request.data_paths[:LISTED_PATHS])
        more = len(request.data_paths) - LISTED_PATHS
        if more > 0:
            listed += f" and {more} more"
        who = f"{_user(request.user)} pushed" if request.user else "a push brought"
        return f"{who} new data" + (f" ({listed})" if listed else "")
    if request.trigger == "schedule":
        when = f" ({code(request.occasion)})" if request.occasion else ""
        return f"its schedule {code(request.schedule)} came due{when}"
    if request.trigger == "monitoring":
        detail = f" ({code(request.occasion, 120)})" if request.occasion else ""
        return f"production monitoring saw the gates breached{detail}"
    return f"{_user(request.user)} asked for it" if request.user else "it was asked for"


def _file_list(changes: Sequence[ChangedFile]) -> str:
    lines = [f"- {code(c.path, 200)}" + (" (deleted)" if c.deleted else "") for c in changes]
    return "\n".join(lines)


def pr_body(request: RetrainRequest, changes: Sequence[ChangedFile]) -> str:
    branch = code(request.default_branch)
    return (
        f"mlgate retrained {branch} at {_commit_link(request)} because {reason(request)}, "
        "and committed the files under `retrain.outputs` that changed:\n\n"
        f"{_file_list(changes)}\n\n"
        "This PR is evaluated and gated like any other; merge it to adopt the retrained "
        "outputs. Until then the next retrain moves this PR rather than opening another.\n"
    )


def moved_comment(request: RetrainRequest, changes: Sequence[ChangedFile]) -> str:
    branch = code(request.default_branch)
    return (
        f"mlgate retrained {branch} at {_commit_link(request)} because {reason(request)}, "
        "and moved this PR's branch to the new outputs:\n\n"
        f"{_file_list(changes)}\n"
    )


def _record(request: RetrainRequest, detail: str, number: int | None = None) -> AuditRecord:
    entry = audit.Entry(
        "retrain",
        request.user or AUDIT_USER,
        number or 0,
        request.sha,
        f"{request.label}: {detail}",
        time.time(),
    )
    return AuditRecord(entry)


def _paths(changes: Sequence[ChangedFile]) -> str:
    return clip(one_line(", ".join(c.path for c in changes)), 300)


def opened(request: RetrainRequest, number: int, changes: Sequence[ChangedFile]) -> Publication:
    """A new retrain PR was opened: the audit log says so."""
    record = _record(request, f"opened #{number} with {_paths(changes)}", number)
    return Publication(request.repo, number, OPENED, audit=(record,))


def moved(request: RetrainRequest, number: int, changes: Sequence[ChangedFile]) -> Publication:
    """The open retrain PR was moved to this retrain: its comment and the audit log say so."""
    detail = f"moved #{number} to {request.short_sha} with {_paths(changes)}"
    return Publication(
        request.repo,
        number,
        MOVED,
        reply=moved_comment(request, changes),
        audit=(_record(request, detail, number),),
    )


def already_published(request: RetrainRequest, number: int) -> Publication:
    """The open retrain PR already holds exactly these outputs on this commit (a retrain run
    again, or a rerun job): nothing to commit or say on the PR; the audit log notes it."""
    record = _record(request, f"#{number} already holds these outputs; nothing to commit", number)
    return Publication(request.repo, number, UNCHANGED, audit=(record,))


def unchanged(request: RetrainRequest) -> Publication:
    """The retrain changed nothing under `retrain.outputs`: no PR, one audit entry."""
    record = _record(request, "no change under retrain.outputs; no PR")
    return Publication(request.repo, None, UNCHANGED, audit=(record,))


def superseded(request: RetrainRequest, newer: str) -> Publication:
    """The retrain PR already holds a retrain of the newer default-branch head: not run."""
    record = _record(request, f"not run: the retrain PR already holds the newer {newer[:SHORT]}")
    return Publication(request.repo, None, SUPERSEDED, audit=(record,))


def pipeline_started(request: RetrainRequest, pipeline_file: str, workflow: str) -> Publication:
    """`runner: semaphore`: the retrain pipeline runs; the audit log says where."""
    detail = (
        f"started the Semaphore pipeline {clip(one_line(pipeline_file), 200)} (workflow "
        f"{workflow}) to push {branch_name(request.sha)}"
    )
    return Publication(request.repo, None, STARTED, audit=(_record(request, detail),))


def nothing_pushed(request: RetrainRequest, branch: str) -> Publication:
    """The retrain pipeline passed without moving its branch off the retrained commit: the
    outputs did not change. No PR, one audit entry."""
    record = _record(request, f"the pipeline pushed no change to {branch}; no PR")
    return Publication(request.repo, None, UNCHANGED, audit=(record,))


def failed(request: RetrainRequest, failure: str, log: str) -> Publication:
    """A failed retrain opens nothing: one audit entry and, for a data push, a failing
    `mlgate/retrain` on the pushed commit with the end of the log."""
    record = _record(request, f"failed: {clip(one_line(failure), 300)}")
    checks: tuple[CheckOutput, ...] = ()
    if request.trigger == "data":
        intro = (
            f"mlgate retrained {code(request.default_branch)} at {code(request.short_sha)} "
            f"because {reason(request)}, and the retrain failed: {clip(one_line(failure), 500)}."
            "\n\nNo PR was opened. Fix the cause on the default branch; the next data push "
            "retrains again.\n\n"
        )
        summary = clip(intro + log_details(log, CHECK_LOG_LINES), CHECK_SUMMARY_LIMIT)
        check = CheckOutput(
            RETRAIN_CHECK,
            request.sha,
            clip(f"Retrain failed: {one_line(failure)}", 200),
            summary,
            "failure",
        )
        checks = (check,)
    return Publication(request.repo, None, FAILED, checks=checks, audit=(record,))
