"""Evaluation decisions without I/O: the course, the checks, the comment and the outcome."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from bot.core.changes import Classification
from bot.core.config import CONFIG_PATH, DeployConfig, RepoConfig, Triggers, parse_config
from bot.core.evaluation_result import Evaluation
from bot.core.pr_facts import PullRequest, Retrain
from bot.core.report import render_check_run, render_comment
from bot.core.setting_hints import draft_markdown, not_evaluated_markdown, summary_with_hints
from bot.errors import RepoConfigError
from bot.runs.check_runs import CONFIG_CHECK, QUALITY_CHECK
from bot.runs.deploy_decisions import deploy_check
from bot.runs.head_records import HeadState
from bot.runs.publication import (
    DONE,
    FAILED,
    CheckOutput,
    KeptEvaluation,
    Publication,
    Reaction,
)
from bot.state import audit

# Outcomes of an evaluation left to Semaphore: started, or not possible here.
SEMAPHORE_STARTED = "semaphore-started"
SEMAPHORE_UNCONFIGURED = "semaphore-unconfigured"
SANDBOX_UNAVAILABLE = "sandbox-unavailable"
RETRAIN = "retrain"  # the kind of a Semaphore run that retrains; "evaluate" only evaluates
# Outcomes that mean the run a command asked for did not succeed.
NOT_SUCCEEDED = (
    "error",
    "config-invalid",
    "superseded",
    SEMAPHORE_UNCONFIGURED,
    SANDBOX_UNAVAILABLE,
)
# The sticky comment lists this many of the PR's newest audit entries.
AUDIT_SHOWN = 10


def problems(found: Sequence[str], heading: str) -> str:
    lines = "\n".join(f"- `{p}`" for p in found)
    return f"{heading}:\n\n{lines}\n"


def quality_config_invalid(pr: PullRequest) -> Publication:
    """`mlgate/quality` when the default branch's configuration is broken; mlgate/config
    says why."""
    check = CheckOutput(
        QUALITY_CHECK,
        pr.head_sha,
        "Configuration invalid",
        "configuration invalid, see mlgate/config",
        "neutral",
    )
    return Publication(pr.repo, pr.number, "config-invalid", checks=(check,))


def config_invalid(pr: PullRequest, found: Sequence[str]) -> Publication:
    """The default branch's configuration is broken: mlgate/config names each problem."""
    check = CheckOutput(
        CONFIG_CHECK,
        pr.head_sha,
        "Configuration invalid",
        problems(found, f"`{CONFIG_PATH}` on `{pr.default_branch}` is invalid"),
        "failure",
    )
    return Publication(pr.repo, pr.number, checks=(check,)).then(quality_config_invalid(pr))


def pr_config_check(pr: PullRequest, text: bytes | None) -> CheckOutput:
    """mlgate/config of a PR that changes the configuration: removed, invalid or valid."""
    if text is None:
        return CheckOutput(
            CONFIG_CHECK,
            pr.head_sha,
            "Configuration removed",
            f"This PR removes `{CONFIG_PATH}`; mlgate will use its defaults.",
            "success",
        )
    try:
        parse_config(text.decode("utf-8", "replace"))
    except RepoConfigError as exc:
        return CheckOutput(
            CONFIG_CHECK,
            pr.head_sha,
            "Configuration invalid",
            problems(exc.problems, f"This PR's `{CONFIG_PATH}` is invalid"),
            "failure",
        )
    return CheckOutput(
        CONFIG_CHECK,
        pr.head_sha,
        "Configuration valid",
        f"This PR's `{CONFIG_PATH}` is valid; it takes effect once merged into "
        f"`{pr.default_branch}`.",
        "success",
    )


def skipped_draft(pr: PullRequest) -> Publication:
    check = CheckOutput(
        QUALITY_CHECK, pr.head_sha, "Draft pull request", draft_markdown(), "skipped"
    )
    return Publication(pr.repo, pr.number, "skipped-draft", checks=(check,))


def irrelevant_check(
    sha: str, changed: int, triggers: Triggers, actions: tuple[Mapping[str, str], ...] | None = None
) -> CheckOutput:
    """`mlgate/quality` skipped: no changed file matches the triggers, which it lists with
    the setting to add (`actions` () for a check without buttons)."""
    summary = not_evaluated_markdown(changed, triggers)
    return CheckOutput(
        QUALITY_CHECK, sha, "Nothing to evaluate", summary, "skipped", actions=actions
    )


def skipped_irrelevant(pr: PullRequest, changed: int, triggers: Triggers) -> Publication:
    check = irrelevant_check(pr.head_sha, changed, triggers)
    return Publication(pr.repo, pr.number, "skipped-irrelevant", checks=(check,))


def sandbox_unavailable(pr: PullRequest, why: str) -> Publication:
    """`mlgate/quality` when the PR's code would run but no sandbox can hold it: nothing ran,
    which says nothing about the PR, so neutral, with what the operator must do."""
    check = CheckOutput(
        QUALITY_CHECK,
        pr.head_sha,
        "Not evaluated: no sandbox on the worker",
        f"Nothing ran: {why}",
        "neutral",
    )
    return Publication(pr.repo, pr.number, SANDBOX_UNAVAILABLE, checks=(check,))


def untrusted_retrain(pr: PullRequest, retrain: Retrain) -> Publication:
    """A retrain of code nobody trusted or approved runs nothing; the PR is told why."""
    why = f"{pr.repo}#{pr.number} at {pr.short_sha} is not approved"
    reply = (
        f"@{retrain.user} the retrain was not run: {why}; comment `/evaluate` to approve "
        "this commit's code first."
    )
    return Publication(pr.repo, pr.number, "error", reply=reply)


def run_notes(
    pr: PullRequest,
    note: str | None,
    approval: audit.Entry | None,
    retrain: Retrain | None,
    listed: int | None = None,
) -> list[str]:
    """The notes a report starts with: who asked, who approved, what was retrained, and, with
    `listed`, that GitHub listed only that many changed files."""
    notes = [note] if note else []
    if approval is not None:
        notes.append(f"@{approval.user} approved running this PR's code at {pr.short_sha}.")
    if retrain is not None:
        notes.append(f"Metrics {retrain.describe()}.")
    if listed is not None:
        notes.append(
            f"GitHub lists at most {listed} files of a PR; changes beyond them are not shown."
        )
    return notes


def reads_head(pr: PullRequest, config: RepoConfig) -> bool:
    """Whether evaluating `pr` reads its head's files: all but a draft left for later do."""
    return not pr.draft or config.triggers.drafts


@dataclass(frozen=True)
class Plan:
    """What an evaluation does once it knows the configuration and the changes: publish
    `done` and stop (skipped, or refused), start the `semaphore` run of that kind, or compare,
    running the PR's code if `may_run`."""

    done: Publication | None = None
    semaphore: str | None = None
    may_run: bool = False
    notes: tuple[str, ...] = ()


def plan(
    pr: PullRequest,
    config: RepoConfig,
    changed: Sequence[str],
    *,
    classified: Callable[[], Classification],
    forced: bool,
    approval: audit.Entry | None,
    retrain: Retrain | None,
    note: str | None,
    trusted: Callable[[], bool],
) -> Plan:
    """The evaluation's course. `classified` reads the repository's metrics paths and
    `trusted` asks GitHub: each only when the answer depends on it."""
    if not reads_head(pr, config):
        return Plan(done=skipped_draft(pr))
    sorted_out = classified()
    if not sorted_out.relevant and not forced:
        return Plan(done=skipped_irrelevant(pr, len(changed), config.triggers))
    listed = len(changed) if sorted_out.truncated else None
    notes = tuple(run_notes(pr, note, approval, retrain, listed))
    needs_code = config.metrics.source != "git" or retrain is not None
    may_run = not needs_code or approval is not None or trusted()
    if retrain is not None and not may_run:
        return Plan(done=untrusted_retrain(pr, retrain))
    kind = semaphore_kind(config, retrain)
    return Plan(semaphore=kind if may_run else None, may_run=may_run, notes=notes)


def semaphore_kind(config: RepoConfig, retrain: Retrain | None) -> str | None:
    """`retrain` or `evaluate` when that run happens on Semaphore, else None."""
    if retrain is not None:
        return RETRAIN if config.retrain.runner == "semaphore" else None
    return "evaluate" if config.metrics.source == "semaphore" else None


def waiting_note(source: str, pr: PullRequest, trusted: bool) -> str:
    if not trusted:
        return (
            f"Evaluation waits for a maintainer's `/evaluate` on {pr.short_sha}: this PR's "
            "code does not run until then. The comparison shows its committed metrics files."
        )
    return f"`metrics.source: {source}` runs on Semaphore; the comparison shows committed files."


def audit_note(entry: audit.Entry) -> str:
    """One line of the PR's audit trail, as the sticky comment lists it."""
    detail = f": {entry.detail}" if entry.detail else ""
    return f"Audit: {entry.kind} by @{entry.user} on {entry.sha[:7]}{detail}"


def published(
    pr: PullRequest,
    evaluation: Evaluation,
    head: HeadState,
    *,
    neutral: bool,
    details_url: str | None,
    deploy: DeployConfig | None,
) -> Publication:
    """The comment and checks of an evaluation of `pr`'s head, unless a newer head superseded
    it; an /override of the head shows on it, and mlgate/deploy (with `deploy` configured)
    follows mlgate/quality."""
    if not head.current:
        check = CheckOutput(
            QUALITY_CHECK,
            pr.head_sha,
            "Superseded",
            "A newer commit was pushed; its evaluation replaces this one.",
            "cancelled",
        )
        return Publication(pr.repo, pr.number, "superseded", checks=(check,))
    override = head.override
    if override is not None and evaluation.error is None:
        evaluation = replace(evaluation, override=f"@{override.user}: {override.detail}")
    output = render_check_run(evaluation)
    conclusion = "neutral" if neutral else output.conclusion
    trail = [audit_note(entry) for entry in head.history[-AUDIT_SHOWN:]]
    shown = replace(evaluation, notes=[*evaluation.notes, *trail])
    checks = [
        CheckOutput(
            QUALITY_CHECK,
            pr.head_sha,
            output.title,
            summary_with_hints(output.summary, evaluation.gates),
            conclusion,
            annotations=tuple(output.annotations),
            details_url=details_url,
        )
    ]
    passed = conclusion == "success"
    if deploy is not None:
        gate = passed or override is not None
        checks.append(
            deploy_check(
                pr.head_sha, deploy, head.approval, head.refusals, gate, refused=head.refused
            )
        )
    return Publication(
        pr.repo,
        pr.number,
        "error" if evaluation.error is not None else conclusion,
        comment=render_comment(shown),
        checks=tuple(checks),
        kept=KeptEvaluation(pr.head_sha, evaluation, neutral, passed),
    )


def run_reaction(comment_id: int | None, outcome: str) -> Reaction | None:
    """🚀 or 😕 on the command that asked for a run, once it ended; nothing while Semaphore
    runs it (its pipeline-done notification reacts)."""
    if comment_id is None or outcome == SEMAPHORE_STARTED:
        return None
    return Reaction(comment_id, FAILED if outcome in NOT_SUCCEEDED else DONE)


GITHUB_KEPT_FAILING = "GitHub kept failing; comment /evaluate to retry"
RUN_FAILED = "mlgate failed; comment /evaluate to retry"


def ended_without_verdict(pr: PullRequest, *, github: bool, attempts: int) -> Publication:
    """`mlgate/quality` of a run that ended for good without a verdict: GitHub kept failing
    it through every retry (`github`), or it failed otherwise. Nothing was decided
    about the PR, so neutral (as without a sandbox), and no run follows: /evaluate or the
    check's Re-evaluate button starts one."""
    if github:
        title = GITHUB_KEPT_FAILING
        why = (
            f"GitHub kept failing mlgate's requests (server errors or rate limits) through "
            f"{attempts} attempt{'s' if attempts != 1 else ''} of this evaluation"
        )
    else:
        title = RUN_FAILED
        why = "The evaluation stopped on an error (the worker's log says which)"
    summary = (
        f"{why}, so it reached no verdict on this commit. Comment `/evaluate` on the pull "
        "request, or press **Re-evaluate**, to run it again."
    )
    check = CheckOutput(QUALITY_CHECK, pr.head_sha, title, summary, "neutral")
    return Publication(pr.repo, pr.number, "error", checks=(check,))


def reacted(shown: Publication, comment_id: int | None) -> Publication:
    """`shown` with the reaction of the command that asked for the run, if any."""
    reaction = run_reaction(comment_id, shown.outcome)
    if reaction is None:
        return shown
    return shown.then(Publication(shown.repo, reactions=(reaction,)))
