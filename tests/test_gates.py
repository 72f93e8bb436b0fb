"""Quality gates: min/max, max_drop/max_rise (absolute and %), missing metrics, noise."""

from __future__ import annotations

import pytest

from bot.core.gates import Gate, GateResult, Threshold, evaluate_gates, improved, verdict
from bot.core.metrics import MetricValue, Stat

M = "metrics.json"
Files = dict[str, dict[str, MetricValue]]


def one(gate: Gate, old: float | None, new: float | str | None, **kw: Stat) -> GateResult:
    base = {M: {gate.metric: old}} if old is not None else {M: {}}
    head = {M: {gate.metric: new}} if new is not None else {M: {}}
    (result,) = evaluate_gates([gate], base, head, noise=kw or None)
    return result


def test_min_fails_below_and_says_by_how_much() -> None:
    result = one(Gate("accuracy", min=0.87), 0.9, 0.861)
    assert not result.passed
    assert result.reason == "0.861 < min 0.87"
    assert (result.metric, result.file, result.old, result.new) == ("accuracy", M, 0.9, 0.861)


def test_min_passes_at_or_above() -> None:
    assert one(Gate("accuracy", min=0.87), 0.9, 0.87).passed
    assert one(Gate("accuracy", min=0.87), 0.9, 0.88).reason == "0.88 ≥ min 0.87"


def test_max_fails_above_and_passes_at_or_below() -> None:
    assert one(Gate("loss", direction="lower", max=0.3), 0.2, 0.31).reason == "0.31 > max 0.3"
    assert one(Gate("loss", direction="lower", max=0.3), 0.2, 0.3).passed


def test_absolute_max_drop_fails_when_higher_is_better_metric_falls_too_far() -> None:
    gate = Gate("accuracy", max_drop=Threshold(0.01))
    assert one(gate, 0.90, 0.885).reason == "drop 0.015 > max_drop 0.01"
    assert not one(gate, 0.90, 0.885).passed


def test_drop_exactly_at_the_limit_passes_despite_float_rounding() -> None:
    # 0.87 - 0.86 == 0.010000000000000009 in binary floating point.
    result = one(Gate("accuracy", max_drop=Threshold(0.01)), 0.87, 0.86)
    assert result.passed
    assert result.reason == "drop 0.01 ≤ max_drop 0.01"


def test_rise_of_a_higher_is_better_metric_never_fails_max_drop() -> None:
    assert one(Gate("accuracy", max_drop=Threshold(0.01)), 0.80, 0.95).reason == "no drop"


def test_relative_max_rise_fails_when_lower_is_better_metric_grows_beyond_percent() -> None:
    gate = Gate("loss", direction="lower", max_rise=Threshold(5.0, relative=True))
    result = one(gate, 0.40, 0.43)
    assert not result.passed
    assert result.reason == "rise 7.5% > max_rise 5%"
    assert one(gate, 0.40, 0.41).reason == "rise 2.5% ≤ max_rise 5%"


def test_relative_max_drop_is_a_percentage_of_the_base_value() -> None:
    gate = Gate("auc", max_drop=Threshold(1.0, relative=True))
    assert one(gate, 0.80, 0.79).reason == "drop 1.25% > max_drop 1%"  # 0.01 of 0.80
    assert one(gate, 0.80, 0.795).reason == "drop 0.63% ≤ max_drop 1%"


def test_relative_threshold_against_a_negative_base_uses_its_magnitude() -> None:
    gate = Gate("log_likelihood", max_drop=Threshold(10.0, relative=True))
    assert one(gate, -100.0, -105.0).passed
    assert one(gate, -100.0, -115.0).reason == "drop 15% > max_drop 10%"


def test_relative_threshold_against_a_zero_base_fails_any_move() -> None:
    gate = Gate("errors", direction="lower", max_rise=Threshold(5.0, relative=True))
    result = one(gate, 0.0, 2.0)
    assert not result.passed
    assert result.reason == "rise 2.0 from 0 > max_rise 5%"


def test_absolute_max_rise_and_max_drop_together_bound_both_ways() -> None:
    gate = Gate("latency", max_drop=Threshold(5), max_rise=Threshold(2))
    assert one(gate, 100, 103).reason == "rise 3 > max_rise 2"
    assert one(gate, 100, 94).reason == "drop 6 > max_drop 5"
    assert one(gate, 100, 101).passed


def test_all_failing_checks_are_named_in_one_line() -> None:
    gate = Gate("accuracy", min=0.87, max_drop=Threshold(0.01))
    assert one(gate, 0.90, 0.861).reason == "0.861 < min 0.87; drop 0.039 > max_drop 0.01"


def test_new_metric_without_base_value_skips_drop_checks_but_not_min() -> None:
    gate = Gate("accuracy", min=0.5, max_drop=Threshold(0.01))
    result = one(gate, None, 0.6)
    assert result.passed
    assert result.reason == "0.6 ≥ min 0.5; no base value for max_drop"


def test_gated_metric_missing_at_head_fails_naming_file_and_key() -> None:
    result = one(Gate("accuracy", min=0.8), 0.9, None)
    assert not result.passed
    assert result.reason == "accuracy missing at head (expected in metrics.json)"


def test_gated_metric_found_nowhere_fails_listing_the_files_and_naming_the_setting() -> None:
    old = {"a.json": {"x": 1}, "b.yaml": {"y": 1}}
    (result,) = evaluate_gates([Gate("accuracy", min=0.8)], old, old)
    assert not result.passed
    assert result.file is None
    assert result.reason == (
        "accuracy not found at head (looked in a.json, b.yaml); name its file under metrics.files"
    )


def test_gate_with_path_prefix_applies_to_that_file_only() -> None:
    old = {"train.json": {"acc": 0.99}, "eval.json": {"acc": 0.90}}
    new = {"train.json": {"acc": 0.50}, "eval.json": {"acc": 0.91}}
    (result,) = evaluate_gates([Gate("eval.json:acc", min=0.9)], old, new)
    assert (result.file, result.metric, result.passed) == ("eval.json", "acc", True)


def test_gate_with_path_prefix_on_a_file_absent_at_head_fails_naming_it() -> None:
    (result,) = evaluate_gates([Gate("eval/metrics.json:acc", min=0.9)], {}, {})
    assert result.reason == "acc missing at head (expected in eval/metrics.json)"


def test_plain_gate_applies_in_every_file_that_has_the_metric() -> None:
    old: Files = {"train.json": {"acc": 0.99}, "eval.json": {"acc": 0.90}, "x.json": {"f1": 1}}
    new: Files = {"train.json": {"acc": 0.50}, "eval.json": {"acc": 0.91}, "x.json": {"f1": 1}}
    results = evaluate_gates([Gate("acc", min=0.9)], old, new)
    assert [(r.file, r.passed) for r in results] == [("eval.json", True), ("train.json", False)]


def test_metric_key_with_a_colon_is_not_taken_for_a_path() -> None:
    (result,) = evaluate_gates([Gate("f1:macro", min=0.5)], {}, {M: {"f1:macro": 0.6}})
    assert (result.file, result.metric, result.passed) == (M, "f1:macro", True)


def test_non_numeric_or_nan_head_value_fails() -> None:
    assert one(Gate("acc", min=0.5), 0.9, "n/a").reason == "acc is 'n/a' at head, not a number"
    assert one(Gate("acc", min=0.5), 0.9, float("nan")).reason == "acc is NaN at head"


def test_gate_without_thresholds_passes_and_says_so() -> None:
    assert one(Gate("acc"), 0.9, 0.1).reason == "no threshold set"


def test_drop_within_noise_passes_and_is_marked() -> None:
    gate = Gate("accuracy", max_drop=Threshold(0.01))
    result = one(gate, 0.90, 0.885, accuracy=Stat(0.885, 0.02, 5))
    assert result.passed
    assert result.within_noise
    assert result.reason == "drop 0.015 > max_drop 0.01, but within noise (±0.02)"


def test_drop_beyond_noise_still_fails() -> None:
    gate = Gate("accuracy", max_drop=Threshold(0.01))
    result = one(gate, 0.90, 0.85, **{"metrics.json:accuracy": Stat(0.85, 0.02, 5)})
    assert not result.passed
    assert not result.within_noise


def test_min_holds_even_within_noise() -> None:
    result = one(Gate("accuracy", min=0.87), 0.871, 0.869, accuracy=Stat(0.869, 0.01, 3))
    assert not result.passed
    assert result.within_noise


def test_direction_says_which_way_is_better() -> None:
    assert improved(Gate("acc"), 0.1)
    assert not improved(Gate("acc"), -0.1)
    assert improved(Gate("loss", direction="lower"), -0.1)
    assert not improved(Gate("loss", direction="lower"), 0.1)


@pytest.mark.parametrize(
    ("passed", "expected"),
    [([], "no_gates"), ([True, True], "passed"), ([True, False], "failed")],
)
def test_overall_verdict(passed: list[bool], expected: str) -> None:
    results = [GateResult("m", M, p, "", Gate("m")) for p in passed]
    assert verdict(results) == expected


def test_gate_with_no_metrics_files_at_all_says_so_and_names_the_setting() -> None:
    (result,) = evaluate_gates([Gate("accuracy", min=0.8)], {}, {})
    assert not result.passed
    assert result.reason == (
        "accuracy not found: no metrics files at base or head; name yours under metrics.files"
    )
