"""Production monitoring decisions: breach and recovery over a window of uploads."""

from __future__ import annotations

import pytest

from bot.core.gates import Gate, Threshold
from bot.core.monitoring import Judged, Observation, decide, judge, marker

GATES = [Gate("accuracy", min=0.8), Gate("latency_ms", direction="lower", max=200)]


def obs(accuracy: float, latency: float = 100, at: float = 0) -> Observation:
    return Observation(
        at, "a" * 40, {"metrics.json": {"accuracy": accuracy, "latency_ms": latency}}
    )


def judged(*accuracies: float) -> list[Judged]:
    return judge([obs(a, at=i) for i, a in enumerate(accuracies)], GATES, None)


def test_each_upload_is_held_to_every_gate() -> None:
    [ok, low, slow] = judge([obs(0.9), obs(0.79), obs(0.9, 201)], GATES, None)
    assert ok.passed and not low.passed and not slow.passed
    assert [r.passed for r in slow.results] == [True, False]
    # The boundary itself passes.
    assert judge([obs(0.8, 200)], GATES, None)[0].passed


def test_relative_gates_compare_with_the_deployed_commits_evaluation() -> None:
    gates = [Gate("accuracy", max_drop=Threshold(2, relative=True))]
    baseline = {"metrics.json": {"accuracy": 0.9}}
    [kept, dropped] = judge([obs(0.882), obs(0.88)], gates, baseline)
    assert kept.passed and not dropped.passed
    # Without the deployed commit's evaluation there is nothing to drop from.
    assert judge([obs(0.1)], gates, None)[0].passed


@pytest.mark.parametrize(
    "accuracies, issue_open, action, breached, retrain",
    [
        ((0.7, 0.7), False, "none", False, False),  # fewer failures than the window
        ((0.9, 0.7, 0.7, 0.7), False, "open", True, True),
        ((0.7, 0.9, 0.7, 0.7), False, "none", False, False),  # not in a row
        ((0.7, 0.7, 0.7), True, "update", True, False),  # still breached: no second retrain
        ((0.7, 0.9, 0.9), True, "update", False, False),  # recovering, not yet recovered
        ((0.7, 0.9, 0.9, 0.9), True, "close", False, False),
        ((0.9, 0.9, 0.9), False, "none", False, False),
    ],
)
def test_a_window_of_uploads_in_a_row_breaches_and_recovers(
    accuracies: tuple[float, ...], issue_open: bool, action: str, breached: bool, retrain: bool
) -> None:
    decision = decide(judged(*accuracies), 3, issue_open, ("issue", "retrain"))
    assert (decision.action, decision.breached, decision.retrain) == (action, breached, retrain)


def test_on_breach_without_issue_opens_nothing_but_may_retrain() -> None:
    decision = decide(judged(0.1, 0.1), 2, False, ("retrain",))
    assert (decision.action, decision.breached, decision.retrain) == ("none", True, True)
    assert decide(judged(0.1, 0.1), 2, False, ("issue",)).retrain is False


def test_the_marker_names_the_environment() -> None:
    assert marker("production") == "<!-- mlgate:monitor production -->"
    assert marker("staging") != marker("production")
