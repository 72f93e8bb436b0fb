"""Semaphore runs whose notification never comes are polled, published once, or expired."""

from __future__ import annotations

import time

import pytest

from bot.emulator import GitHubEmulator
from bot.emulator.semaphore_emulator import SemaphoreEmulator
from bot.errors import SettingsError
from bot.runs.semaphore_poll import POLL_INTERVAL, Action, decide, describe_wait
from bot.settings import DEFAULT_SEMAPHORE_RUN_TIMEOUT, Settings
from tests import test_semaphore_flow
from tests.support import Bot
from tests.test_semaphore_flow import (
    UPLOADED,
    github_writes,
    head,
    notify,
    quality,
    reactions,
    report,
    say,
    upload,
)
from workers import jobs, scheduler

HOUR = 3600.0
# The flow's PR fixture, shared, not copied; the Semaphore emulator is conftest's.
pr = test_semaphore_flow.pr
pytestmark = pytest.mark.usefixtures("semaphore")


def test_a_run_is_polled_then_left_alone_for_a_minute_then_expired() -> None:
    start = 1000.0
    assert decide(start, None, start + 1, 6 * HOUR) is Action.POLL
    assert decide(start, start + 1, start + 30, 6 * HOUR) is Action.WAIT
    assert decide(start, start + 1, start + 1 + POLL_INTERVAL, 6 * HOUR) is Action.POLL
    assert decide(start, start + 1, start + 6 * HOUR, 6 * HOUR) is Action.EXPIRE


def test_waits_read_as_hours_and_minutes() -> None:
    assert [describe_wait(s) for s in (6 * HOUR, 5400, 2700, 30)] == ["6h", "1h30m", "45m", "30s"]


def test_the_run_timeout_is_six_hours_unless_configured() -> None:
    env = {"GITHUB_WEBHOOK_SECRET": "s", "REDIS_URL": "redis://localhost"}
    assert Settings.from_env(env).semaphore_run_timeout == DEFAULT_SEMAPHORE_RUN_TIMEOUT == 6 * HOUR
    custom = env | {"MLGATE_SEMAPHORE_RUN_TIMEOUT": "1h30m"}
    assert Settings.from_env(custom).semaphore_run_timeout == 5400
    with pytest.raises(SettingsError, match="MLGATE_SEMAPHORE_RUN_TIMEOUT='soon'"):
        Settings.from_env(env | {"MLGATE_SEMAPHORE_RUN_TIMEOUT": "soon"})


def test_the_scheduler_polls_every_minute(redis_url: str) -> None:
    registered = {job.func: job.interval for job in scheduler.build(redis_url).get_jobs()}
    assert registered[jobs.poll_semaphore_runs] == POLL_INTERVAL


def polls(sem: SemaphoreEmulator, pipeline_id: str) -> int:
    return sum(1 for r in sem.requests if r.method == "GET" and r.path.endswith(pipeline_id))


def test_a_run_whose_notification_never_comes_is_published_by_the_poll(
    bot: Bot,
    emulator: GitHubEmulator,
    semaphore: SemaphoreEmulator,
    pr: int,
) -> None:
    sha = head(emulator, pr)
    comment = say(bot, pr, "/evaluate", "alice")
    [workflow] = semaphore.workflows
    now = time.time()
    assert jobs.poll_semaphore_runs(now) == {"running": 1}
    assert jobs.poll_semaphore_runs(now + 30) == {"waiting": 1}  # once a minute per run
    assert polls(semaphore, workflow.initial_pipeline_id) == 1

    upload(bot, sha, workflow.parameters["MLGATE_RUN_ID"])
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    assert jobs.poll_semaphore_runs(now + POLL_INTERVAL) == {"published": 1}

    data = report(emulator, pr)
    assert data["metrics"]["metrics.json"]["accuracy"]["new"] == UPLOADED["accuracy"]
    assert quality(emulator, sha)["conclusion"] == "success"
    assert reactions(emulator, comment) == ["eyes", "rocket"]
    assert jobs.poll_semaphore_runs(now + 2 * POLL_INTERVAL) == {}  # no longer waiting


def test_a_late_notification_after_the_poll_publishes_nothing_more(
    bot: Bot,
    emulator: GitHubEmulator,
    semaphore: SemaphoreEmulator,
    pr: int,
) -> None:
    comment = say(bot, pr, "/evaluate", "alice")
    [workflow] = semaphore.workflows
    upload(bot, head(emulator, pr), workflow.parameters["MLGATE_RUN_ID"])
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    jobs.poll_semaphore_runs()
    before = github_writes(emulator)

    assert notify(bot, semaphore, semaphore.pipeline_done_payload(workflow.initial_pipeline_id))
    assert github_writes(emulator) == before
    assert reactions(emulator, comment) == ["eyes", "rocket"]


def test_a_poll_after_the_notification_publishes_nothing_more(
    bot: Bot,
    emulator: GitHubEmulator,
    semaphore: SemaphoreEmulator,
    pr: int,
) -> None:
    say(bot, pr, "/evaluate", "alice")
    [workflow] = semaphore.workflows
    upload(bot, head(emulator, pr), workflow.parameters["MLGATE_RUN_ID"])
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    notify(bot, semaphore, semaphore.pipeline_done_payload(workflow.initial_pipeline_id))
    before = github_writes(emulator)

    assert jobs.poll_semaphore_runs() == {"finished": 1}
    assert github_writes(emulator) == before
    assert polls(semaphore, workflow.initial_pipeline_id) == 0


def test_a_run_that_never_ends_expires_saying_what_to_check(
    bot: Bot,
    emulator: GitHubEmulator,
    semaphore: SemaphoreEmulator,
    pr: int,
) -> None:
    sha = head(emulator, pr)
    comment = say(bot, pr, "/evaluate", "alice")
    [workflow] = semaphore.workflows

    assert jobs.poll_semaphore_runs(time.time() + 6 * HOUR + 1) == {"expired": 1}
    check = quality(emulator, sha)
    link = f"{semaphore.base_url}/workflows/{workflow.id}"
    assert (check["conclusion"], check["details_url"]) == ("failure", link)
    assert check["output"]["title"] == "No result from Semaphore after 6h"
    summary = check["output"]["summary"]
    assert "waited 6h" in summary and link in summary
    assert "notification" in summary and "stuck" in summary
    assert reactions(emulator, comment) == ["eyes", "confused"]

    before = github_writes(emulator)
    semaphore.finish_pipeline(workflow.initial_pipeline_id, "passed")
    notify(bot, semaphore, semaphore.pipeline_done_payload(workflow.initial_pipeline_id))
    assert github_writes(emulator) == before  # the expiry stands
