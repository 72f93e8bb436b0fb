"""Decisions as values, without HTTP: what evaluations, deploys and expiries publish."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
import redis

from bot.core.changes import PR_FILES_CAP, Classification, classify
from bot.core.config import Approvers, DeployConfig, MetricsConfig, RepoConfig, Triggers
from bot.core.evaluation_result import Evaluation
from bot.core.gates import Gate, GateResult
from bot.core.pr_facts import PullRequest, Retrain
from bot.runs import evaluation_decisions as decide
from bot.runs.check_runs import CONFIG_CHECK, DEPLOY_CHECK, QUALITY_CHECK
from bot.runs.deploy_decisions import DEPLOY_ACTIONS, deploy_check, refusal
from bot.runs.head_records import HeadRecords, HeadState
from bot.runs.publication import (
    REFUSED_DEPLOY,
    AuditRecord,
    CheckOutput,
    Publication,
    Reaction,
    step,
)
from bot.runs.semaphore_poll import expiry
from bot.state import audit, deploys
from bot.state.semaphore_runs import SemaphoreRun
from tests.test_report import improving, regressing

REPO = "octo/model"
HEAD = improving().head_sha
PR = PullRequest(REPO, 7, HEAD, improving().base_sha, "main", "main", REPO, "alice", False, "")
DEPLOY = DeployConfig(promotion="Deploy to production", approvers=Approvers("maintain"))


def entry(kind: str, user: str = "ada", detail: str = "", sha: str = HEAD) -> audit.Entry:
    return audit.Entry(kind, user, PR.number, sha, detail, at=1_700_000_000.0)


def never(*_: object) -> Any:
    raise AssertionError("asked although the decision did not depend on the answer")


def publish(
    make: Callable[[], Evaluation] = improving,
    *,
    neutral: bool = False,
    details_url: str | None = None,
    current: bool = True,
    override: audit.Entry | None = None,
    history: Sequence[audit.Entry] = (),
    deploy: DeployConfig | None = DEPLOY,
) -> Publication:
    head = HeadState(current, override, None, (), tuple(history))
    return decide.published(
        PR, make(), head, neutral=neutral, details_url=details_url, deploy=deploy
    )


def checks(publication: Publication) -> dict[str, CheckOutput]:
    return {c.name: c for c in publication.checks}


# -------------------------------------------------------------------------- one publication


def test_later_decisions_replace_a_check_gather_replies_and_add_up_the_rest() -> None:
    first = Publication(
        REPO,
        7,
        "queued",
        checks=(step(QUALITY_CHECK, HEAD, "queued"), step(QUALITY_CHECK, "b" * 40, "queued")),
        reply="help text",
        reactions=(Reaction(1, "eyes"),),
        audit=(AuditRecord(entry("retrain")),),
    )
    done = CheckOutput(QUALITY_CHECK, HEAD, "Quality gate passed", "table", "success")
    later = Publication(REPO, None, "success", comment="body", checks=(done,), reply="did you mean")
    both = first.then(later)
    assert both.checks == (done, step(QUALITY_CHECK, "b" * 40, "queued"))
    assert both.reply == "help text\n\n---\n\ndid you mean"
    assert (both.number, both.outcome, both.comment) == (7, "success", "body")
    assert both.reactions == (Reaction(1, "eyes"),) and len(both.audit) == 1
    assert Publication(REPO).then(Publication(REPO)).reply is None


# -------------------------------------------------------------------------- evaluations


def test_a_superseded_evaluation_only_cancels_its_check() -> None:
    shown = publish(current=False)
    assert shown.outcome == "superseded"
    assert [(c.name, c.conclusion, c.title) for c in shown.checks] == [
        (QUALITY_CHECK, "cancelled", "Superseded")
    ]
    assert shown.comment is None and shown.kept is None


def test_a_passing_evaluation_opens_the_deploy_approval_and_is_kept() -> None:
    shown = publish(details_url="https://ci.example/1")
    quality, deploy = checks(shown)[QUALITY_CHECK], checks(shown)[DEPLOY_CHECK]
    assert (quality.conclusion, quality.details_url) == ("success", "https://ci.example/1")
    assert (deploy.conclusion, deploy.actions) == ("action_required", DEPLOY_ACTIONS)
    assert shown.kept is not None and shown.kept.gate_passed and not shown.kept.neutral
    assert shown.outcome == "success" and shown.comment is not None


def test_an_override_turns_a_failing_gate_green_and_opens_the_deploy() -> None:
    assert checks(publish(regressing))[DEPLOY_CHECK].title == "Waiting for the quality gate"
    shown = publish(regressing, override=entry("override", "alice", "known drift"))
    quality = checks(shown)[QUALITY_CHECK]
    assert (quality.conclusion, quality.title) == ("success", "Overridden by @alice: known drift")
    assert checks(shown)[DEPLOY_CHECK].conclusion == "action_required"
    assert shown.kept is not None and shown.kept.evaluation.override == "@alice: known drift"


def test_untrusted_code_that_did_not_run_is_neutral_and_keeps_the_deploy_waiting() -> None:
    shown = publish(neutral=True)
    assert checks(shown)[QUALITY_CHECK].conclusion == "neutral"
    assert checks(shown)[DEPLOY_CHECK].conclusion == "neutral"
    assert shown.kept is not None and shown.kept.neutral and not shown.kept.gate_passed


def test_the_comment_lists_the_last_ten_audit_entries_and_no_deploy_check_without_deploys() -> None:
    history = [entry("retrain", detail=f"epochs={n}") for n in range(12)]
    shown = publish(history=history, deploy=None)
    assert shown.comment is not None
    listed = [line for line in shown.comment.splitlines() if "Audit: " in line]
    assert listed == [f"> Audit: retrain by @ada on {HEAD[:7]}: epochs={n}" for n in range(2, 12)]
    assert set(checks(shown)) == {QUALITY_CHECK}


def test_a_broken_default_configuration_fails_config_and_neutralises_quality() -> None:
    shown = decide.config_invalid(PR, ["evaluate.repeats: expected an integer (line 3)"])
    config, quality = checks(shown)[CONFIG_CHECK], checks(shown)[QUALITY_CHECK]
    assert config.conclusion == "failure"
    assert "- `evaluate.repeats: expected an integer (line 3)`" in config.summary
    assert (quality.conclusion, quality.summary) == (
        "neutral",
        "configuration invalid, see mlgate/config",
    )
    assert shown.outcome == "config-invalid"


@pytest.mark.parametrize(
    ("text", "conclusion", "title"),
    [
        (None, "success", "Configuration removed"),
        (b"version: 1\nevaluate: {repeats: many}\n", "failure", "Configuration invalid"),
        (b"version: 1\n", "success", "Configuration valid"),
    ],
)
def test_a_pr_that_changes_the_configuration_gets_it_checked(
    text: bytes | None, conclusion: str, title: str
) -> None:
    check = decide.pr_config_check(PR, text)
    assert (check.name, check.conclusion, check.title) == (CONFIG_CHECK, conclusion, title)


def test_a_retrain_of_unapproved_code_only_replies() -> None:
    shown = decide.untrusted_retrain(PR, Retrain({"epochs": "5"}, "rita"))
    assert shown.outcome == "error" and shown.checks == () and shown.comment is None
    assert shown.reply is not None and shown.reply.startswith("@rita the retrain was not run")


def course(
    pr: PullRequest = PR,
    config: RepoConfig | None = None,
    *,
    changed: Sequence[str] = ("data/images.dvc",),
    forced: bool = False,
    approval: audit.Entry | None = None,
    retrain: Retrain | None = None,
    trusted: Callable[[], bool] = never,
    classified: Callable[[], Classification] | None = None,
) -> decide.Plan:
    return decide.plan(
        pr,
        config or RepoConfig(),
        changed,
        classified=classified or (lambda: classify(changed, Triggers())),
        forced=forced,
        approval=approval,
        retrain=retrain,
        note="Evaluated at the request of @ada.",
        trusted=trusted,
    )


RUN = RepoConfig(metrics=MetricsConfig(source="run"))
ON_SEMAPHORE = RepoConfig(metrics=MetricsConfig(source="semaphore"))


def test_drafts_and_prs_that_change_nothing_relevant_are_skipped() -> None:
    skipped = course(replace(PR, draft=True), classified=never).done
    assert skipped is not None and skipped.outcome == "skipped-draft"
    irrelevant = course(changed=["README.md"]).done
    assert irrelevant is not None and irrelevant.outcome == "skipped-irrelevant"
    assert course(changed=["README.md"], forced=True).done is None  # a command evaluates anyway


def test_a_skipped_check_names_the_triggers_in_force_and_the_setting_with_an_example() -> None:
    config = RepoConfig(triggers=Triggers(data=("data/*.csv",), code=()))
    irrelevant = course(config=config, changed=["README.md", "docs/x.md"]).done
    assert irrelevant is not None
    [check] = irrelevant.checks
    assert (check.conclusion, check.title) == ("skipped", "Nothing to evaluate")
    assert check.summary.startswith("No changed file matches the triggers (2 files changed).")
    assert "The triggers in force: data: `data/*.csv`; code: none." in check.summary
    assert check.summary.endswith(
        'Add to `.github/mlgate.yml`:\n\n```yaml\ntriggers:\n  code: ["src/**"]\n```\n'
    )
    draft = course(replace(PR, draft=True), classified=never).done
    assert draft is not None
    assert draft.checks[0].summary.endswith("```yaml\ntriggers:\n  drafts: true\n```\n")


def test_the_quality_check_of_a_gate_that_found_no_metric_ends_with_the_setting() -> None:
    lost = replace(
        improving(),
        gates=[GateResult("f1", None, False, "f1 not found", Gate("f1", min=0.5))],
    )
    summary = checks(publish(lambda: lost, deploy=None))[QUALITY_CHECK].summary
    assert summary.endswith("```yaml\nmetrics:\n  files: [results/metrics.json]\n```\n")
    found = checks(publish(improving, deploy=None))[QUALITY_CHECK].summary
    assert "metrics.files" not in found


def test_committed_metrics_are_compared_without_asking_who_wrote_the_code() -> None:
    plan = course()  # metrics.source git; `trusted` would fail the test if asked
    assert (plan.done, plan.semaphore, plan.may_run) == (None, None, True)
    assert plan.notes == ("Evaluated at the request of @ada.",)
    listed = course(changed=[f"data/{n}.dvc" for n in range(PR_FILES_CAP)])
    assert listed.notes[-1].startswith(f"GitHub lists at most {PR_FILES_CAP} files of a PR")


def test_code_runs_only_when_trusted_or_approved_for_this_head() -> None:
    assert not course(config=RUN, trusted=lambda: False).may_run
    assert course(config=RUN, trusted=lambda: True).may_run
    approved = course(config=RUN, approval=entry("approve-evaluate"))
    assert approved.may_run
    assert f"@ada approved running this PR's code at {HEAD[:7]}." in approved.notes
    refused = course(retrain=Retrain({}, "rita"), trusted=lambda: False).done
    assert refused is not None and refused.reply is not None


def test_semaphore_runs_start_only_for_code_that_may_run() -> None:
    assert course(config=ON_SEMAPHORE, trusted=lambda: True).semaphore == "evaluate"
    assert course(config=ON_SEMAPHORE, trusted=lambda: False).semaphore is None


@pytest.mark.parametrize(
    ("outcome", "reaction"),
    [
        ("success", "rocket"),
        ("failure", "rocket"),
        ("skipped-irrelevant", "rocket"),
        ("error", "confused"),
        ("config-invalid", "confused"),
        ("superseded", "confused"),
        (decide.SEMAPHORE_UNCONFIGURED, "confused"),
    ],
)
def test_the_command_hears_how_its_run_ended(outcome: str, reaction: str) -> None:
    assert decide.run_reaction(5, outcome) == Reaction(5, reaction)


def test_no_reaction_without_a_command_or_while_semaphore_runs() -> None:
    assert decide.run_reaction(None, "error") is None
    assert decide.run_reaction(5, decide.SEMAPHORE_STARTED) is None
    started = Publication(REPO, 7, decide.SEMAPHORE_STARTED)
    assert decide.reacted(started, 5) == started
    assert decide.reacted(publish(), 5).reactions == (Reaction(5, "rocket"),)


# -------------------------------------------------------------------------- deploys


def test_the_deploy_check_waits_for_the_gate_then_the_approval_then_shows_it() -> None:
    waiting = deploy_check(HEAD, DEPLOY, None, ["@rita: not an approver"], gate_passed=False)
    assert (waiting.conclusion, waiting.actions) == ("neutral", ())
    assert waiting.summary.endswith("Refused approvals:\n- @rita: not an approver")
    open_ = deploy_check(HEAD, DEPLOY, None, [], gate_passed=True)
    assert (open_.conclusion, open_.actions) == ("action_required", DEPLOY_ACTIONS)
    approved = deploy_check(HEAD, DEPLOY, entry("approve-deploy"), [], gate_passed=True)
    assert (approved.conclusion, approved.title) == (
        "success",
        "Approved by @ada — deploys on merge",
    )
    assert "2023-11-14 22:13 UTC" in approved.summary


def pull(state: str = "open", sha: str = HEAD, author: str = "alice") -> dict[str, object]:
    return {"state": state, "head": {"sha": sha}, "user": {"login": author}}


def test_refusals_are_decided_in_order_asking_github_only_when_needed() -> None:
    def why(
        p: dict[str, object],
        user: str,
        gate: bool = True,
        deploy: DeployConfig = DEPLOY,
        permission: Callable[[], str] = never,
        in_team: Callable[[str], object] = never,
    ) -> str | None:
        return refusal(
            p,
            HEAD,
            deploy,
            user,
            gate_passed=gate,
            permission=permission,
            in_team=lambda team: bool(in_team(team)),
            contributors=lambda: (),
        )

    assert str(why(pull(sha="0" * 40), "ada")).startswith("stale:")
    assert str(why(pull(state="closed"), "ada")).startswith("stale:")
    assert str(why(pull(), "ada", gate=False)).startswith("the quality gate has not passed")
    assert "may not approve its deploy" in str(why(pull(), "alice"))
    named = DeployConfig(promotion="p", approvers=Approvers(None, users=("Ada",)))
    assert why(pull(), "ada", deploy=named) is None
    assert why(pull(), "mia", permission=lambda: "maintain") is None
    teams = DeployConfig(promotion="p", approvers=Approvers("admin", teams=("ml-leads",)))
    asked: list[str] = []
    assert why(pull(), "tom", deploy=teams, permission=lambda: "write", in_team=asked.append)
    assert asked == ["ml-leads"]
    assert why(pull(), "tom", deploy=teams, permission=lambda: "write", in_team=bool) is None


def test_pending_records_count_before_they_are_written(redis_conn: redis.Redis) -> None:
    records = HeadRecords(redis_conn, REPO, PR.number)
    deploys.add_refusal(redis_conn, REPO, HEAD, "@rita: not an approver")
    assert not records.gate_passed(HEAD)
    records.add(entry("override", "alice", "known drift"), "override")
    records.add(entry("deploy-refused", "tom", "not an approver"), REFUSED_DEPLOY)
    assert records.gate_passed(HEAD)
    assert records.decision("override", HEAD) == entry("override", "alice", "known drift")
    assert records.decision("override", "0" * 40) is None
    assert records.about(HEAD).current  # no head recorded yet: nothing supersedes it
    assert records.refusals(HEAD) == ["@rita: not an approver", "@tom: not an approver"]
    audit.record(redis_conn, REPO, entry("retrain"))
    assert [e.kind for e in records.history()] == ["retrain", "override", "deploy-refused"]
    assert audit.decision(redis_conn, "override", REPO, PR.number, HEAD) is None


# -------------------------------------------------------------------------- Semaphore runs


def run(comment_id: int | None) -> SemaphoreRun:
    return SemaphoreRun(
        "r1", "evaluate", REPO, 7, HEAD, PR.base_sha, "wf", "pl", 42, time.time(),
        comment_id=comment_id, workflow_url="https://sem.example/workflows/wf",
    )  # fmt: skip


def test_an_expired_run_fails_its_check_and_tells_the_command() -> None:
    shown = expiry(run(99), 6 * 3600, "https://mlgate.example")
    [check] = shown.checks
    assert (check.conclusion, check.title) == ("failure", "No result from Semaphore after 6h")
    assert check.details_url == "https://sem.example/workflows/wf"
    assert "https://mlgate.example/webhooks/semaphore" in check.summary
    assert shown.reactions == (Reaction(99, "confused"),)
    assert expiry(run(None), 60, "").reactions == ()
