"""What is recorded about a PR's heads, as decisions see it: Redis plus their pending records."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from bot.runs.deploy_decisions import APPROVAL
from bot.runs.publication import REFUSED_DEPLOY, AuditRecord
from bot.state import audit, deploys, pr_heads

# Audit entries read for a comment: the repository's newest, of which this PR's are shown.
AUDIT_SCAN = 500


@dataclass(frozen=True)
class HeadState:
    """What is recorded about one head sha when an evaluation of it is shown."""

    current: bool  # still the PR's head: a superseded run must not publish
    override: audit.Entry | None
    approval: audit.Entry | None  # of deploying it
    refusals: tuple[str, ...]  # of approving its deploy, the newest
    history: tuple[audit.Entry, ...]  # the PR's audit trail, oldest first
    refused: int = 0  # how many approvals were refused in all (at least those listed)


@dataclass
class HeadRecords:
    """One PR's records. `pending` holds what is decided but not yet published, so that a
    comment's later command, and the comment shown with it, already count it."""

    conn: redis.Redis
    repo: str
    number: int
    pending: list[AuditRecord] = field(default_factory=list)

    def add(self, entry: audit.Entry, remember: str | None = None) -> AuditRecord:
        record = AuditRecord(entry, remember)
        self.pending.append(record)
        return record

    def decision(self, kind: str, sha: str) -> audit.Entry | None:
        """The latest decision of that kind (an approval, an override) for exactly `sha`."""
        for record in reversed(self.pending):
            if record.remember == kind and record.entry.sha == sha:
                return record.entry
        return audit.decision(self.conn, kind, self.repo, self.number, sha)

    def _pending_refusals(self, sha: str) -> list[str]:
        return [
            f"@{r.entry.user}: {r.entry.detail}"
            for r in self.pending
            if r.remember == REFUSED_DEPLOY and r.entry.sha == sha
        ]

    def refusals(self, sha: str) -> list[str]:
        """The newest refused approvals of deploying `sha`, as `@user: why`, oldest first."""
        return deploys.refusals(self.conn, self.repo, sha)[0] + self._pending_refusals(sha)

    def refused(self, sha: str) -> int:
        """How many approvals of deploying `sha` were refused in all."""
        return deploys.refusals(self.conn, self.repo, sha)[1] + len(self._pending_refusals(sha))

    def gate_passed(self, sha: str) -> bool:
        """The quality gate passed at `sha`, or someone /override'd it there (which may come
        before any evaluation published)."""
        if deploys.gate_recorded_passed(self.conn, self.repo, sha):
            return True
        return self.decision("override", sha) is not None

    def history(self) -> list[audit.Entry]:
        """The PR's audit trail, oldest first."""
        stored = [e for e in audit.entries(self.conn, self.repo, AUDIT_SCAN) if e.pr == self.number]
        return stored + [r.entry for r in self.pending]

    def about(self, sha: str) -> HeadState:
        """Everything recorded about `sha`, read at once."""
        return HeadState(
            current=pr_heads.is_current(self.conn, self.repo, self.number, sha),
            override=self.decision("override", sha),
            approval=self.decision(APPROVAL, sha),
            refusals=tuple(self.refusals(sha)),
            history=tuple(self.history()),
            refused=self.refused(sha),
        )
