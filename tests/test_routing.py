from __future__ import annotations

import logging

import pytest

from bot.core.routing import Event, Router
from tests.support import payload


def test_handlers_run_for_their_event_and_action_only() -> None:
    router = Router()
    calls: list[str] = []

    @router.register("pull_request", action="opened")
    def opened(event: Event, ctx: object) -> None:
        calls.append("opened")

    @router.register("pull_request")
    def any_action(event: Event, ctx: object) -> None:
        calls.append("any")

    assert (
        router.dispatch(Event("pull_request", payload("pull_request", "opened.payload")), None) == 2
    )
    assert (
        router.dispatch(Event("pull_request", payload("pull_request", "closed.payload")), None) == 1
    )
    assert calls == ["any", "opened", "any"]


def test_combined_router_keeps_every_modules_handlers() -> None:
    first, second = Router(), Router()
    seen: list[str] = []
    first.register("push")(lambda event, ctx: seen.append("first"))
    second.register("push")(lambda event, ctx: seen.append("second"))
    combined = Router.combine(first, second)
    assert combined.dispatch(Event("push", payload("push")), None) == 2
    assert seen == ["first", "second"]


def test_unknown_event_is_ignored_with_a_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.core.routing")
    assert Router().dispatch(Event("marketplace_purchase", {"action": "purchased"}), None) == 0
    assert "no handler for marketplace_purchase.purchased" in caplog.text


def test_event_reads_repo_and_installation_from_the_payload() -> None:
    event = Event("issue_comment", payload("issue_comment", "created.with-installation.payload"))
    assert event.repo == "Codertocat/Hello-World"
    assert event.installation_id is not None
    assert Event("ping", {"zen": "x"}).repo is None
