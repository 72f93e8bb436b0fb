"""Deploy decisions without I/O: the mlgate/deploy check, who may approve, what a deploy is."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.config import DeployConfig
from bot.core.permissions import at_least
from bot.github.github_client import PULL_COMMITS_LIMIT
from bot.runs.check_runs import DEPLOY_CHECK
from bot.runs.publication import CheckOutput
from bot.state import audit

# GitHub allows label and identifier at most 20 characters, description at most 40.
APPROVE = "approve-deploy"
DEPLOY_ACTIONS = (
    {
        "label": "Approve deploy",
        "identifier": APPROVE,
        "description": "Approve deploying this commit",
    },
)
# The audit decision kind that records a valid approval of one head sha.
APPROVAL = "deploy-approval"
ON_APPROVAL, ON_MERGE = "approval", "merge"
# Refused approvals listed in the check summary: the newest; older ones are counted.
REFUSALS_SHOWN = 10


@dataclass(frozen=True)
class DeployRequest:
    """Deploy `sha` (the PR head, or its merge commit) of PR `number` approved at `head_sha`."""

    repo: str
    number: int
    head_sha: str
    sha: str
    kind: str  # "approval" or "merge"
    approver: str
    installation_id: int | None
    promotion: str | None = None  # deploy.promotion when approved, for a deploy that waits
    clone_url: str = ""  # for deploy.run, which runs the commit on a worker

    @property
    def token(self) -> str:
        """Semaphore's request_token and our own claim: one deploy per (repo, PR, sha, kind),
        whatever retries, double clicks and duplicate webhooks happen."""
        raw = "\n".join((self.repo.lower(), str(self.number), self.head_sha, self.kind))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


def approved_title(user: str, on: str) -> str:
    return f"Approved by @{user} — " + ("deployed" if on == ON_APPROVAL else "deploys on merge")


def describe_approvers(deploy: DeployConfig) -> str:
    who = deploy.approvers
    parts = [f"users with {who.permission} permission or more"] if who.permission else []
    parts += [f"@{u}" for u in who.users] + [f"team {t}" for t in who.teams]
    return ", ".join(parts).capitalize() if parts else "Nobody"


def deploy_check(
    sha: str,
    deploy: DeployConfig,
    approval: audit.Entry | None,
    refusals: Sequence[str],
    gate_passed: bool,
    *,
    refused: int | None = None,
) -> CheckOutput:
    """`mlgate/deploy` on `sha` as its state is: waiting for the gate, waiting for an
    approval (with the button and the refusals so far), or approved.

    `refusals` are the newest refusals, oldest first, and `refused` how many there were in
    all: the summary lists the newest REFUSALS_SHOWN and counts the others."""
    if approval is not None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval.at))
        return CheckOutput(
            DEPLOY_CHECK,
            sha,
            approved_title(approval.user, deploy.on),
            f"@{approval.user} approved deploying {sha[:7]} at {when}.",
            "success",
            actions=(),
        )
    refused_text = _refusals_text(refusals, refused)
    if not gate_passed:
        return CheckOutput(
            DEPLOY_CHECK,
            sha,
            "Waiting for the quality gate",
            f"Deploying {sha[:7]} can be approved once mlgate/quality passes (or is "
            f"overridden) for it.{refused_text}",
            "neutral",
            actions=(),
        )
    return CheckOutput(
        DEPLOY_CHECK,
        sha,
        "Waiting for a deploy approval",
        f"The quality gate passed at {sha[:7]}. {describe_approvers(deploy)} may approve "
        f"deploying it: the Approve deploy button, or `/deploy` in a comment.{refused_text}",
        "action_required",
        actions=DEPLOY_ACTIONS,
    )


def _refusals_text(refusals: Sequence[str], refused: int | None) -> str:
    if not refusals:
        return ""
    shown = list(refusals[-REFUSALS_SHOWN:])
    more = max(refused or 0, len(refusals)) - len(shown)
    lines = "\n".join(f"- {r}" for r in shown)
    tail = f"\n- and {more} more" if more > 0 else ""
    return f"\n\nRefused approvals:\n{lines}{tail}"


def refusal(
    pull: Mapping[str, Any],
    sha: str,
    deploy: DeployConfig,
    user: str,
    *,
    gate_passed: bool,
    permission: Callable[[], str],
    in_team: Callable[[str], bool],
    contributors: Callable[[], Collection[str]],
) -> str | None:
    """Why `user` may not approve deploying `sha` of `pull` (as GitHub has it now), or None.

    Unless `allow_self_approval`, neither the PR's author nor anyone who authored or committed
    one of its commits (`contributors`, logins) may approve: pushing to someone else's PR
    must not make its code one's own to ship. `permission`, `in_team` and `contributors` ask
    GitHub, and only when the answer depends on them.
    """
    if pull["head"]["sha"] != sha:
        head = str(pull["head"]["sha"])[:7]
        return (
            f"stale: {sha[:7]} is no longer the head of this pull request; "
            f"review `{head}` and approve that"
        )
    if pull.get("state") != "open":
        return f"stale: {sha[:7]} is no longer the head of an open pull request"
    if not gate_passed:
        return f"the quality gate has not passed (nor been overridden) at {sha[:7]}"
    if not deploy.allow_self_approval and user.lower() == str(pull["user"]["login"]).lower():
        return "the author of a pull request may not approve its deploy (allow_self_approval)"
    who = deploy.approvers
    named = user.lower() in {u.lower() for u in who.users}
    approver = named or (who.permission is not None and at_least(permission(), who.permission))
    if not approver and not any(in_team(team) for team in who.teams):
        return f"@{user} is not an approver ({describe_approvers(deploy)})"
    if deploy.allow_self_approval:
        return None
    commits = pull.get("commits")
    if isinstance(commits, int) and commits > PULL_COMMITS_LIMIT:
        return (
            f"this pull request has {commits} commits and GitHub lists {PULL_COMMITS_LIMIT}, "
            f"so mlgate cannot tell that @{user} wrote none of them (allow_self_approval)"
        )
    if user.lower() in {c.lower() for c in contributors()}:
        return (
            f"@{user} authored or committed a commit of this pull request and may not "
            "approve its deploy (allow_self_approval)"
        )
    return None


def what_follows(outcome: str, deploy: DeployConfig) -> str:
    """What happens after an approval, by the outcome of starting the deploy."""
    return {
        "on-merge": "it deploys when this pull request is merged",
        "pending": "it deploys when the Semaphore pipeline of this commit is done",
        "promoted": f"Semaphore promotion `{deploy.promotion}` started",
        "queued": "the deploy command runs on a worker",
    }.get(outcome, f"deploy: {outcome}")
