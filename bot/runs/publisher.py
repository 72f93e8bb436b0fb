"""The one publisher: writes a Publication out to Redis and GitHub, in a fixed order."""

from __future__ import annotations

import time

import redis

from bot import telemetry
from bot.core.report import report_verdict
from bot.github.github_client import GitHubClient
from bot.runs import sticky_comment
from bot.runs.check_runs import QUALITY_CHECK, Checks
from bot.runs.publication import (
    REFUSED_DEPLOY,
    AuditRecord,
    CheckOutput,
    KeptEvaluation,
    Publication,
)
from bot.state import (
    audit,
    comment_replies,
    deploys,
    queues,
    recent_evaluations,
    stored_evaluations,
)


class Publisher:
    """Writes publications for one installation's client.

    The order is fixed: what Redis remembers first (audit entries, decisions, the kept
    evaluation), then the comment, the checks, the reactions and the reply, and runs last,
    so that a queued run never overtakes the check that shows it queued.
    """

    def __init__(self, gh: GitHubClient, conn: redis.Redis) -> None:
        self.gh, self.conn = gh, conn

    def publish(self, publication: Publication) -> str:
        """Write `publication` out; returns its outcome."""
        repo, number = publication.repo, publication.number
        for record in publication.audit:
            self._record(repo, record)
        kept = publication.kept
        if kept is not None:
            assert number is not None, "an evaluation is of a PR"
            stored_evaluations.save(
                self.conn, repo, number, kept.sha, kept.evaluation, kept.neutral
            )
            deploys.record_gate(self.conn, repo, kept.sha, kept.gate_passed)
            recent_evaluations.record(self.conn, repo, listed(number, kept, time.time()))
        if publication.comment is not None:
            assert number is not None, "the sticky comment is a PR's"
            sticky_comment.upsert(self.gh, self.conn, repo, number, publication.comment)
        checks = Checks(self.gh, self.conn, repo)
        for check in publication.checks:
            checks.show(check)
            if kept is not None and check.name == QUALITY_CHECK and check.sha == kept.sha:
                # An evaluation's verdict, once it shows: mlgate_evaluations_total.
                verdict = check.conclusion or "in_progress"
                telemetry.metrics().evaluations.labels(verdict=verdict).inc()
        for reaction in publication.reactions:
            self.gh.add_reaction(repo, reaction.comment_id, reaction.content)
        if publication.reply:
            # The one write that is not idempotent comes after those that are (GitHub answers
            # a reaction given twice with the first): a write failing after it would fail the
            # job, and its retry would post the reply again.
            assert number is not None, "a reply is on a PR"
            if publication.reply_to is None:
                self.gh.create_comment(repo, number, publication.reply)
            else:
                self._reply_once(repo, number, publication.reply_to, publication.reply)
        for run in publication.runs:
            queues.enqueue_run(self.conn, run.kind, run.func, repo, number, run.sha, **run.job)
        return publication.outcome

    def _reply_once(self, repo: str, number: int, comment_id: int, reply: str) -> None:
        """Post comment `comment_id`'s reply unless it went out already. After a try that
        never said how it ended, the PR's comments tell: ours that carry the reply's marker."""
        marker = reply_marker(comment_id)
        state = comment_replies.start(self.conn, repo, comment_id)
        if state == "posted":
            return
        if state == "unsure":
            login = self.gh.bot_login()
            if any(
                sticky_comment.written_by(comment, login)
                and str(comment.get("body", "")).endswith(marker)
                for comment in self.gh.list_comments(repo, number)
            ):
                comment_replies.posted(self.conn, repo, comment_id)
                return
        self.gh.create_comment(repo, number, f"{reply}\n\n{marker}")
        comment_replies.posted(self.conn, repo, comment_id)

    def show(self, repo: str, check: CheckOutput) -> None:
        """A step of a long run ("fetching", "evaluating 1/3"), shown while it goes on."""
        Checks(self.gh, self.conn, repo).show(check)

    def _record(self, repo: str, record: AuditRecord) -> None:
        entry = audit.record(self.conn, repo, record.entry)
        if record.remember == REFUSED_DEPLOY:
            deploys.add_refusal(self.conn, repo, entry.sha, f"@{entry.user}: {entry.detail}")
        elif record.remember is not None:
            audit.set_decision(self.conn, record.remember, repo, entry)


def reply_marker(comment_id: int) -> str:
    """The end of the reply to comment `comment_id`: hidden on GitHub, found again by a rerun."""
    return f"<!-- mlgate:reply {comment_id} -->"


def listed(number: int, kept: KeptEvaluation, now: float) -> recent_evaluations.PublishedEvaluation:
    """How the dashboard lists a kept evaluation: its verdict, or neutral for code that the
    check showed as not run."""
    gates = kept.evaluation.gates
    return recent_evaluations.PublishedEvaluation(
        pr=number,
        sha=kept.sha,
        verdict="neutral" if kept.neutral else report_verdict(kept.evaluation),
        at=now,
        failed_gates=sum(not gate.passed for gate in gates),
        gates=len(gates),
    )
