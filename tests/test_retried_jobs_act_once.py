"""A job that GitHub fails half-way is retried whole: what it wrote before the failure must not
be written twice (found by bench/soak: a `/help` answered twice when its reaction failed)."""

from __future__ import annotations

import redis
from rq.job import Job, JobStatus

from bot import sample
from bot.emulator import GitHubEmulator
from bot.http_transport import MAX_TRIES
from tests.support import Bot, comment_event

REPO = "octo/model"


def test_a_command_whose_reaction_github_fails_is_answered_once_when_retried(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    emulator.set_permission(REPO, "alice", "write")
    emulator.repo(REPO).commit("feature", {"README.md": "changed\n"}, "c", author="alice")
    pull = emulator.open_pull_request(REPO, head="feature", base="main", user="alice")
    number = int(pull["number"])
    # Every try of the first attempt's reaction fails: the job fails, and its retry succeeds.
    emulator.inject_fault("POST", r"/reactions$", 502, times=MAX_TRIES)
    event = comment_event(emulator, REPO, number, "/help", "alice")
    bot.deliver("issue_comment", event)

    [job_key] = redis_conn.scan_iter("rq:job:github-*")
    job = Job.fetch(job_key.decode().removeprefix("rq:job:"), connection=redis_conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 1  # the second of three attempts succeeded
    replies = [
        c for c in emulator.comments(REPO, number) if c["user"]["login"] == emulator.bot_login
    ]
    assert len(replies) == 1
    reactions = emulator.reactions(int(event["comment"]["id"]))
    assert [r["content"] for r in reactions] == ["eyes"]
    posted = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert [r.status for r in posted] == [201]
