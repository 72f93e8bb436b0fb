"""What head binding, comment claims and bounded refusals keep in Redis, at their boundaries."""

from __future__ import annotations

import redis

from bot.core.config import Approvers, DeployConfig
from bot.core.pr_facts import github_time
from bot.runs.deploy_decisions import deploy_check, refusal
from bot.state import comment_claims, deploys
from bot.state.comment_claims import CLAIM_TTL
from bot.state.pr_heads import first_seen, record_appearance
from bot.state.redis_conn import key

REPO = "octo/model"
SHA = "a" * 40
DEPLOY = DeployConfig(promotion="Deploy", approvers=Approvers("maintain"))


def test_github_times_read_as_seconds_and_anything_else_as_none() -> None:
    assert github_time("2024-05-01T12:00:00Z") == 1714564800.0
    assert github_time("2024-05-01T14:00:00+02:00") == 1714564800.0
    for value in (None, "", "yesterday", "2024-05-01T12:00:00", 1714564800):
        assert github_time(value) is None


def test_a_head_appeared_when_its_event_says_else_when_first_seen(
    redis_conn: redis.Redis,
) -> None:
    assert first_seen(redis_conn, REPO, 1, SHA, 100.5) == 100.5
    assert first_seen(redis_conn, REPO, 1, SHA, 200.0) == 100.5  # the first sight stands
    # The event that brought the head is when it appeared, earlier or later than first seen.
    record_appearance(redis_conn, REPO, 1, SHA, 90.0)
    assert first_seen(redis_conn, REPO, 1, SHA, 300.0) == 90.0
    record_appearance(redis_conn, REPO, 1, SHA, 400.0)  # reopened, or pushed again
    assert first_seen(redis_conn, REPO, 1, SHA, 500.0) == 400.0
    # Per PR and per sha.
    assert first_seen(redis_conn, REPO, 2, SHA, 7.0) == 7.0
    assert first_seen(redis_conn, REPO, 1, "b" * 40, 8.0) == 8.0
    assert redis_conn.ttl(key("pr", REPO, 1, "appeared")) > 0


def test_a_comment_belongs_to_its_first_delivery_for_a_week(redis_conn: redis.Redis) -> None:
    assert comment_claims.claim(redis_conn, REPO, 11, "delivery-1")
    assert comment_claims.claim(redis_conn, REPO, 11, "delivery-1")  # its job's retry
    assert not comment_claims.claim(redis_conn, REPO, 11, "delivery-2")
    assert not comment_claims.claim(redis_conn, "Octo/Model", 11, "delivery-2")
    assert comment_claims.claim(redis_conn, REPO, 12, "delivery-2")
    ttl = redis_conn.ttl(key("comment", REPO, 11, "claim"))
    assert CLAIM_TTL - 5 < ttl <= CLAIM_TTL == 7 * 24 * 3600


def test_refusals_keep_the_newest_ten_and_count_them_all(redis_conn: redis.Redis) -> None:
    assert deploys.refusals(redis_conn, REPO, SHA) == ([], 0)
    for n in range(10):
        deploys.add_refusal(redis_conn, REPO, SHA, f"@u{n}: no")
    assert deploys.refusals(redis_conn, REPO, SHA) == ([f"@u{n}: no" for n in range(10)], 10)
    for n in range(10, 13):
        deploys.add_refusal(redis_conn, REPO, SHA, f"@u{n}: no")
    assert deploys.refusals(redis_conn, REPO, SHA) == ([f"@u{n}: no" for n in range(3, 13)], 13)


def test_the_deploy_check_shows_at_most_ten_refusals() -> None:
    def listed(refusals: list[str], refused: int) -> list[str]:
        check = deploy_check(SHA, DEPLOY, None, refusals, True, refused=refused)
        return check.summary.split("Refused approvals:\n", 1)[1].splitlines()

    ten = [f"@u{n}: no" for n in range(10)]
    assert listed(ten, 10) == [f"- {r}" for r in ten]
    eleven = [f"@u{n}: no" for n in range(11)]
    assert listed(eleven, 11) == [f"- {r}" for r in eleven[1:]] + ["- and 1 more"]
    assert listed(ten, 500) == [f"- {r}" for r in ten] + ["- and 490 more"]
    assert "Refused" not in deploy_check(SHA, DEPLOY, None, [], True, refused=0).summary


def test_contributors_are_asked_only_of_an_approver_and_only_without_self_approval() -> None:
    pull: dict[str, object] = {"state": "open", "head": {"sha": SHA}, "user": {"login": "alice"}}
    asked: list[str] = []

    def contributors() -> set[str]:
        asked.append("commits")
        return {"Mia", "alice"}

    def why(user: str, level: str, deploy: DeployConfig = DEPLOY) -> str | None:
        return refusal(
            pull,
            SHA,
            deploy,
            user,
            gate_passed=True,
            permission=lambda: level,
            in_team=lambda team: False,
            contributors=contributors,
        )

    assert (
        why("rita", "read") == "@rita is not an approver (Users with maintain permission or more)"
    )
    assert asked == []  # not an approver: who wrote the commits does not matter
    assert why("mia", "maintain") == (
        "@mia authored or committed a commit of this pull request and may not approve its "
        "deploy (allow_self_approval)"
    )
    assert why("ada", "admin") is None
    assert asked == ["commits", "commits"]
    allowed = DeployConfig(
        promotion="Deploy", approvers=Approvers("maintain"), allow_self_approval=True
    )
    assert why("mia", "maintain", allowed) is None
    assert asked == ["commits", "commits"]
    # GitHub lists 250 commits of a PR: past that, nobody can be cleared.
    pull["commits"] = 250
    assert why("ada", "admin") is None
    pull["commits"] = 251
    assert why("ada", "admin") == (
        "this pull request has 251 commits and GitHub lists 250, so mlgate cannot tell that "
        "@ada wrote none of them (allow_self_approval)"
    )
    assert why("ada", "admin", allowed) is None
