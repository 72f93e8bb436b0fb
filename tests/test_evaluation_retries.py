"""An evaluation that GitHub keeps failing after the client's own tries runs again as
MLGATE_RETRY_DELAYS says (here "0,0": three attempts), and once none is left its check ends
neutral, saying to comment /evaluate; it is never left queued (found by bench/soak)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from bot import sample
from bot.core.report import MARKER
from bot.emulator import GitHubEmulator
from bot.http_transport import MAX_TRIES, MAX_WAIT
from bot.runs.evaluation_decisions import GITHUB_KEPT_FAILING, RUN_FAILED
from bot.state import queues
from bot.state.queues import RUNS
from tests.support import Bot, comment_event, pull_request_event

REPO = "octo/model"
INSTALLATION = 42
# The default branch's configuration: read once per attempt, never at the same time as
# another read that the fault's pattern matches, so every try of one attempt meets the fault
# in turn (a path read twice at once, as base and head, shares the faults unpredictably).
CONFIG = r"/contents/\.github/mlgate\.yml$"
# A rate limit the client waits out at once: the tries go fast.
RATE_LIMITED: dict[str, Any] = {"headers": {"retry-after": "0"}, "body": {"message": "slow down"}}


@pytest.fixture
def pull(emulator: GitHubEmulator) -> dict[str, Any]:
    emulator.add_installation(INSTALLATION, "octo")
    base = sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=base)
    emulator.set_permission(REPO, "alice", "write")
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "data/features.csv", "metrics.json")
    emulator.repo(REPO).commit("feature", {n: better[n] for n in names}, "data", author="alice")
    return emulator.open_pull_request(REPO, head="feature", base="main", user="alice")


def evaluation_job(conn: redis.Redis) -> Job:
    [key] = conn.scan_iter("rq:job:evaluate-*")
    return Job.fetch(key.decode().removeprefix("rq:job:"), connection=conn)


def quality_checks(emulator: GitHubEmulator, pull: dict[str, Any]) -> list[dict[str, Any]]:
    head = pull["head"]["sha"]
    return [r for r in emulator.check_runs(REPO, head) if r["name"] == "mlgate/quality"]


def sticky_comments(emulator: GitHubEmulator, pull: dict[str, Any]) -> list[dict[str, Any]]:
    comments = emulator.comments(REPO, int(pull["number"]))
    return [c for c in comments if c["user"]["login"] == emulator.bot_login]


@pytest.mark.parametrize("status", [502, 403])
@pytest.mark.parametrize("failing_attempts", [1, 2])
def test_an_evaluation_github_fails_runs_again_while_attempts_last(
    bot: Bot,
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    pull: dict[str, Any],
    status: int,
    failing_attempts: int,
) -> None:
    extra = RATE_LIMITED if status == 403 else {}
    emulator.inject_fault("GET", CONFIG, status, times=failing_attempts * MAX_TRIES, **extra)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, int(pull["number"]), "opened"))

    job = evaluation_job(redis_conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.number_of_retries == failing_attempts
    [check] = quality_checks(emulator, pull)
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert len(sticky_comments(emulator, pull)) == 1
    configs = [r for r in emulator.requests if r.path.endswith("/.github/mlgate.yml")]
    assert [r.status for r in configs] == [status] * failing_attempts * MAX_TRIES + [200]


@pytest.mark.parametrize("status", [502, 403])
def test_once_no_attempt_is_left_the_check_ends_neutral_saying_to_comment_evaluate(
    bot: Bot,
    emulator: GitHubEmulator,
    redis_conn: redis.Redis,
    pull: dict[str, Any],
    status: int,
) -> None:
    extra = RATE_LIMITED if status == 403 else {}
    # Three attempts (MLGATE_RETRY_DELAYS=0,0), each with every try of the client failing;
    # one try more would be answered: the run stops at the last attempt, not later.
    emulator.inject_fault("GET", CONFIG, status, times=3 * MAX_TRIES, **extra)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, int(pull["number"]), "opened"))

    job = evaluation_job(redis_conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.number_of_retries == 2
    [check] = quality_checks(emulator, pull)
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert (
        check["output"]["title"]
        == GITHUB_KEPT_FAILING
        == ("GitHub kept failing; comment /evaluate to retry")
    )
    assert "through 3 attempts of this evaluation" in check["output"]["summary"]
    assert "Comment `/evaluate`" in check["output"]["summary"]
    assert sticky_comments(emulator, pull) == []
    configs = [r for r in emulator.requests if r.path.endswith("/.github/mlgate.yml")]
    assert len(configs) == 3 * MAX_TRIES


@pytest.mark.parametrize("again", ["/evaluate", "reopened"])
def test_after_giving_up_a_new_run_gets_every_attempt_again(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis, pull: dict[str, Any], again: str
) -> None:
    number, head = int(pull["number"]), pull["head"]["sha"]
    emulator.inject_fault("GET", CONFIG, 502, times=3 * MAX_TRIES)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    assert evaluation_job(redis_conn).get_status() == JobStatus.FAILED

    if again == "/evaluate":
        comment = comment_event(emulator, REPO, number, "/evaluate", "alice")
        bot.deliver("issue_comment", comment)
        kind, retried = f"evaluate-comment{comment['comment']['id']}", None
        reactions = {r["content"] for r in emulator.reactions(int(comment["comment"]["id"]))}
        assert "rocket" in reactions and "confused" not in reactions
    else:
        # The new run meets two failing attempts and still has its third: the ended run's
        # count of retries is not carried over to a run of the very same job id.
        emulator.inject_fault("GET", CONFIG, 502, times=2 * MAX_TRIES)
        bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "reopened"))
        kind, retried = "evaluate", 2

    job = Job.fetch(queues.run_job_id(kind, REPO, number, head), connection=redis_conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.number_of_retries == retried
    checks = quality_checks(emulator, pull)
    assert [(c["status"], c["conclusion"]) for c in checks] == [
        ("completed", "neutral"),
        ("completed", "success"),
    ]
    [report] = [c for c in sticky_comments(emulator, pull) if c["body"].startswith(MARKER)]
    assert head in report["body"]


def test_a_rate_limit_longer_than_the_client_waits_runs_it_again_after_the_retry_after(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis, pull: dict[str, Any]
) -> None:
    wait = int(MAX_WAIT) + 60  # more than the client blocks a worker, more than the delays
    emulator.inject_fault(
        "GET", CONFIG, 403, times=1, headers={"retry-after": str(wait)}, body={"message": "slow"}
    )
    before = datetime.now(UTC)
    bot.deliver("pull_request", pull_request_event(emulator, REPO, int(pull["number"]), "opened"))

    job = evaluation_job(redis_conn)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.number_of_retries == 1
    registry = ScheduledJobRegistry(RUNS, connection=redis_conn)  # type: ignore[no-untyped-call]
    assert registry.get_scheduled_time(job) >= (before + timedelta(seconds=wait)).replace(
        microsecond=0
    )
    # Waiting for its retry, the run still stands for this head: the check is not ended, and
    # the same run is not queued a second time; a newer push cancels it.
    [check] = quality_checks(emulator, pull)
    assert check["status"] != "completed"
    pr = {"repo": REPO, "number": int(pull["number"]), "head_sha": pull["head"]["sha"]}
    args = ("evaluate", queues.EVALUATE_PULL_REQUEST, REPO, pr["number"], pr["head_sha"])
    assert not queues.enqueue_run(redis_conn, *args, pr=pr, installation_id=INSTALLATION)
    assert queues.cancel_run(redis_conn, "evaluate", REPO, pr["number"], pr["head_sha"])
    assert job.get_status() == JobStatus.CANCELED
    assert registry.count == 0


def test_a_run_failing_otherwise_ends_its_check_neutral_at_once(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis, pull: dict[str, Any]
) -> None:
    # GitHub refuses the request itself: trying again would be refused again.
    emulator.inject_fault("GET", CONFIG, 422, times=1, body={"message": "Unprocessable"})
    bot.deliver("pull_request", pull_request_event(emulator, REPO, int(pull["number"]), "opened"))

    job = evaluation_job(redis_conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.number_of_retries is None
    [check] = quality_checks(emulator, pull)
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert check["output"]["title"] == RUN_FAILED == "mlgate failed; comment /evaluate to retry"
