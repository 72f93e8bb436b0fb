"""No event lost: deliveries that failed at GitHub are redelivered by the scheduler's sweep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis

from bot import create_app
from bot.emulator import GitHubEmulator
from bot.github import redelivery
from bot.loopback import serve
from bot.runs.context import Context
from bot.settings import Settings
from bot.state import deliveries
from bot.state.deliveries import DeliveryState
from bot.state.installations import installed_repositories
from tests.support import SECRET, payload, run_jobs

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def delivery(id: int, guid: str, status_code: int, age: timedelta) -> dict[str, Any]:
    return {
        "id": id,
        "guid": guid,
        "status_code": status_code,
        "delivered_at": (NOW - age).isoformat().replace("+00:00", "Z"),
    }


def test_plan_redelivers_the_newest_failed_attempt_of_each_guid() -> None:
    listed = [
        delivery(3, "a", 503, timedelta(minutes=1)),
        delivery(2, "a", 503, timedelta(minutes=5)),
        delivery(1, "b", 0, timedelta(minutes=9)),
    ]
    assert redelivery.plan(listed, NOW, {}) == [1, 3]


def test_plan_skips_guids_that_succeeded_once() -> None:
    listed = [
        delivery(5, "a", 202, timedelta(minutes=1)),
        delivery(4, "a", 503, timedelta(minutes=5)),
        delivery(3, "b", 200, timedelta(minutes=5)),
    ]
    assert redelivery.plan(listed, NOW, {}) == []


def test_plan_leaves_deliveries_older_than_githubs_window() -> None:
    listed = [delivery(1, "a", 503, timedelta(days=3, seconds=1))]
    assert redelivery.plan(listed, NOW, {}) == []


def test_plan_gives_up_after_the_attempt_limit() -> None:
    listed = [delivery(1, "a", 503, timedelta(minutes=1))]
    assert redelivery.plan(listed, NOW, {"a": redelivery.MAX_ATTEMPTS}) == []
    assert redelivery.plan(listed, NOW, {"a": redelivery.MAX_ATTEMPTS - 1}) == [1]


class Switch:
    """A WSGI app that forwards to whichever app is current: the web before and after a fix."""

    def __init__(self, app: WSGIApplication) -> None:
        self.current = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        yield from self.current(environ, start_response)


def test_a_delivery_refused_while_redis_was_down_is_redelivered_and_processed(
    github_env: dict[str, str], emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    down = create_app(github_env | {"REDIS_URL": "redis://127.0.0.1:1/0"})
    switch = Switch(down)
    with serve(switch) as url:
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)
        status = emulator.send_webhook("installation", payload("installation", "created.payload"))
        assert status == 503
        guid = emulator.deliveries[0]["guid"]
        assert deliveries.state(redis_conn, "github", guid) is None

        switch.current = create_app(github_env)  # Redis is back
        ctx = Context(settings=Settings.from_env(), redis=redis_conn)
        redelivered = redelivery.sweep(ctx.github.app_client(), redis_conn)
        assert len(redelivered) == 1
        # A second sweep finds the guid succeeded and sends nothing more.
        assert redelivery.sweep(ctx.github.app_client(), redis_conn) == []

    newest = emulator.deliveries[0]
    assert (newest["guid"], newest["redelivery"], newest["status_code"]) == (guid, True, 202)
    run_jobs(redis_conn)
    assert deliveries.state(redis_conn, "github", guid) is DeliveryState.DONE
    assert installed_repositories(redis_conn) == {"Codertocat/Hello-World": 957387}
