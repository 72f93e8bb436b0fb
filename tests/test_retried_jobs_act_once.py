"""A job that GitHub fails half-way is retried whole: what it wrote before the failure must not
be written twice (found by bench/soak: a `/help` answered twice when its reaction failed)."""

from __future__ import annotations

import redis
from rq.job import Job, JobStatus

from bot import sample
from bot.emulator import GitHubEmulator
from bot.http_transport import MAX_TRIES
from bot.runs.publisher import reply_marker
from bot.state import comment_replies
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


def open_pull(emulator: GitHubEmulator) -> int:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    emulator.set_permission(REPO, "alice", "write")
    emulator.repo(REPO).commit("feature", {"README.md": "changed\n"}, "c", author="alice")
    return int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )


def bot_comments(emulator: GitHubEmulator, number: int) -> list[str]:
    return [
        str(c["body"])
        for c in emulator.comments(REPO, number)
        if c["user"]["login"] == emulator.bot_login
    ]


def test_a_command_job_run_again_after_its_reply_went_out_posts_no_second_reply(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    number = open_pull(emulator)
    event = comment_event(emulator, REPO, number, "/help", "alice")
    bot.deliver("issue_comment", event)
    [job_key] = redis_conn.scan_iter("rq:job:github-*")
    job = Job.fetch(job_key.decode().removeprefix("rq:job:"), connection=redis_conn)
    [reply] = bot_comments(emulator, number)
    assert reply.endswith(reply_marker(int(event["comment"]["id"])))

    job.perform()  # the same job once more (an operator's requeue, a retry after a crash)

    assert bot_comments(emulator, number) == [reply]


def test_after_a_try_that_died_mid_reply_the_prs_comments_decide_whether_to_reply(
    bot: Bot, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    number = open_pull(emulator)
    # Three comments whose first tries began their replies and died without a word: one's
    # POST reached GitHub, one's never did, and one's marker was typed by a user (proving
    # nothing: only the App's bot writes its replies).
    reached, lost, forged = (
        comment_event(emulator, REPO, number, "/help", "alice") for _ in range(3)
    )
    for event in (reached, lost, forged):
        assert comment_replies.start(redis_conn, REPO, int(event["comment"]["id"])) == "new"
    earlier = f"The earlier try's reply\n\n{reply_marker(int(reached['comment']['id']))}"
    emulator.add_comment(REPO, number, earlier, emulator.bot_login)
    emulator.add_comment(REPO, number, reply_marker(int(forged["comment"]["id"])), "mallory")

    for event in (reached, lost, forged):
        bot.deliver("issue_comment", event)

    replies = bot_comments(emulator, number)
    assert replies[0] == earlier
    answered = [
        int(event["comment"]["id"])
        for event in (reached, lost, forged)
        if any(body.endswith(reply_marker(int(event["comment"]["id"]))) for body in replies)
    ]
    assert len(replies) == 3  # the earlier one, then one each for `lost` and `forged`
    assert answered == [int(e["comment"]["id"]) for e in (reached, lost, forged)]
    for event in (reached, lost, forged):
        assert comment_replies.start(redis_conn, REPO, int(event["comment"]["id"])) == "posted"
