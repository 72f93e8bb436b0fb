"""What an evaluation, a command or a deploy decided to write: one value, for the publisher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core.evaluation_result import Evaluation
from bot.core.report import Annotation
from bot.state import audit

# GitHub's reaction names for 👀, 🚀 and 😕: a command accepted, its run done, refused or failed.
ACCEPTED, DONE, FAILED = "eyes", "rocket", "confused"
# How an audit entry is remembered beyond the log: as the head's refused deploy approvals.
REFUSED_DEPLOY = "deploy-refusal"


@dataclass(frozen=True)
class CheckOutput:
    """One mlgate check run as it should show on a head: in progress (no conclusion) or done.

    `actions` None keeps the check's usual buttons (QUALITY_ACTIONS on mlgate/quality).
    """

    name: str
    sha: str
    title: str
    summary: str
    conclusion: str | None = None
    annotations: tuple[Annotation, ...] = ()
    actions: tuple[Mapping[str, str], ...] | None = None
    details_url: str | None = None


def step(
    name: str, sha: str, current: str, *, summary: str | None = None, details_url: str | None = None
) -> CheckOutput:
    """A check in progress, titled by its current step (or saying `summary`)."""
    text = summary or f"Current step: {current}."
    return CheckOutput(name, sha, f"mlgate: {current}", text, details_url=details_url)


@dataclass(frozen=True)
class Reaction:
    comment_id: int
    content: str


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry to append; `remember` also keeps it as the head's decision of that kind
    (an approval, an override) or, as REFUSED_DEPLOY, among the refused deploy approvals."""

    entry: audit.Entry
    remember: str | None = None


@dataclass(frozen=True)
class QueuedRun:
    """A slow job for a `runs` worker, queued once everything else is written."""

    kind: str
    func: str
    sha: str
    job: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KeptEvaluation:
    """The evaluation shown on a head, kept so that a later decision can show it again, and
    whether its gate passed (what mlgate/deploy waits for)."""

    sha: str
    evaluation: Evaluation
    neutral: bool
    gate_passed: bool


@dataclass(frozen=True)
class Publication:
    """Everything one evaluation, command or deploy writes on one PR (or repository).

    `outcome` names the result for logs, tests and the reaction of the command that asked.
    A comment gets at most one `reply`: the answers of its commands are gathered into it;
    `reply_to` is that comment's id (the publisher posts its reply once, whatever reruns).
    """

    repo: str
    number: int | None = None
    outcome: str = ""
    comment: str | None = None
    checks: tuple[CheckOutput, ...] = ()
    reply: str | None = None
    reply_to: int | None = None
    reactions: tuple[Reaction, ...] = ()
    audit: tuple[AuditRecord, ...] = ()
    kept: KeptEvaluation | None = None
    runs: tuple[QueuedRun, ...] = ()

    def then(self, later: Publication) -> Publication:
        """This publication followed by `later`: a check or comment `later` shows again
        replaces the earlier one, replies are gathered, everything else adds up."""
        checks = {(c.name, c.sha): c for c in (*self.checks, *later.checks)}
        replies = [r for r in (self.reply, later.reply) if r]
        return replace(
            self,
            number=self.number if self.number is not None else later.number,
            outcome=later.outcome or self.outcome,
            comment=later.comment if later.comment is not None else self.comment,
            checks=tuple(checks.values()),
            reply="\n\n---\n\n".join(replies) if replies else None,
            reply_to=self.reply_to if self.reply_to is not None else later.reply_to,
            reactions=self.reactions + later.reactions,
            audit=self.audit + later.audit,
            kept=later.kept or self.kept,
            runs=self.runs + later.runs,
        )

    def with_checks(self, checks: Sequence[CheckOutput]) -> Publication:
        return self.then(Publication(self.repo, checks=tuple(checks)))
