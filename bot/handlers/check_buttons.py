"""Check buttons and re-runs: "Re-evaluate" and GitHub's re-run evaluate the head again."""

from __future__ import annotations

import logging
from typing import Any

from bot.core.pr_facts import PullRequest
from bot.core.routing import Event, Router
from bot.runs.check_runs import DEPLOY_CHECK, QUALITY_CHECK
from bot.runs.context import Context
from bot.runs.deploy_decisions import APPROVE
from bot.runs.evaluation_queue import queued
from bot.runs.pr_commands import press_button
from bot.runs.publisher import Publisher
from bot.state.pr_heads import pr_for_sha, record_head

log = logging.getLogger(__name__)
router = Router()


def _pull_number(ctx: Context, repo: str, sha: str, pulls: list[dict[str, Any]]) -> int | None:
    # Check runs on a fork PR's head carry no pull_requests; we remember the PR of each head.
    if pulls:
        return int(pulls[0]["number"])
    return pr_for_sha(ctx.redis, repo, sha)


def _reevaluate(event: Event, ctx: Context, sha: str, pulls: list[dict[str, Any]]) -> None:
    repo = event.repo
    assert repo is not None
    number = _pull_number(ctx, repo, sha, pulls)
    if number is None:
        log.info("no pull request for %s; nothing to re-evaluate", sha, extra=event.log_extra())
        return
    gh = ctx.client(event)
    pull = gh.get_pull(repo, number)
    if pull["head"]["sha"] != sha or pull["state"] != "open":
        log.info("re-run of an old head or closed PR ignored", extra=event.log_extra())
        return
    pr = PullRequest.from_api(pull, event.payload["repository"])
    record_head(ctx.redis, pr.repo, pr.number, pr.head_sha)
    assert event.installation_id is not None
    note = f"Re-evaluated at the request of @{event.payload['sender']['login']}."
    Publisher(gh, ctx.redis).publish(queued(pr, event.installation_id, note))


@router.register("check_run", action="requested_action")
def requested_action(event: Event, ctx: Context) -> None:
    """ "Re-evaluate", "Retrain" and "Approve deploy" act as `/evaluate`, `/retrain` and
    `/deploy` by the one who clicked."""
    check_run = event.payload["check_run"]
    identifier = event.payload["requested_action"]["identifier"]
    buttons = {QUALITY_CHECK: ("evaluate", "retrain"), DEPLOY_CHECK: (APPROVE,)}
    if identifier not in buttons.get(check_run.get("name"), ()):
        return
    repo = event.repo
    assert repo is not None
    number = _pull_number(ctx, repo, check_run["head_sha"], check_run["pull_requests"])
    if number is not None:
        press_button(event, ctx, number, check_run["head_sha"], identifier)


@router.register("check_run", action="rerequested")
def check_run_rerequested(event: Event, ctx: Context) -> None:
    check_run = event.payload["check_run"]
    if check_run.get("name") == QUALITY_CHECK:
        _reevaluate(event, ctx, check_run["head_sha"], check_run["pull_requests"])


@router.register("check_suite", action="rerequested")
def check_suite_rerequested(event: Event, ctx: Context) -> None:
    suite = event.payload["check_suite"]
    _reevaluate(event, ctx, suite["head_sha"], suite["pull_requests"])
