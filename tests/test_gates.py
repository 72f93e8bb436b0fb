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


@pytest.mark.parametrize("head", ["n/a", float("nan"), True])
def test_a_head_value_that_is_not_a_number_fails_even_without_thresholds(
    head: MetricValue,
) -> None:
    # No threshold could be met or missed: only the value itself can fail the gate.
    (result,) = evaluate_gates([Gate("acc")], {M: {"acc": 0.9}}, {M: {"acc": head}})
    assert result.passed is False
    assert result.within_noise is False
    assert verdict([result]) == "failed"


def test_a_metric_missing_at_head_fails_and_is_never_within_noise() -> None:
    result = one(Gate("acc", min=0.5), 0.9, None, acc=Stat(0.9, 1.0, 3))
    assert result.passed is False
    assert result.within_noise is False


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


# --- boundaries and the order of checks ------------------------------------------------------


def test_max_passes_below_and_says_so() -> None:
    result = one(Gate("loss", direction="lower", max=0.3), 0.2, 0.25)
    assert result.passed is True
    assert result.reason == "0.25 ≤ max 0.3"


def test_min_and_max_together_pass_inside_and_fail_outside() -> None:
    gate = Gate("acc", min=0.5, max=0.99)
    assert one(gate, 0.9, 0.7).reason == "0.7 ≥ min 0.5; 0.7 ≤ max 0.99"
    assert one(gate, 0.9, 0.995).reason == "0.995 > max 0.99"
    assert one(gate, 0.9, 0.4).reason == "0.4 < min 0.5"


def test_a_relative_drop_exactly_at_the_percent_passes_and_just_beyond_fails() -> None:
    # 5% of 200 is 10: the limit is the base times the percentage over 100.
    gate = Gate("throughput", max_drop=Threshold(5.0, relative=True))
    at_limit = one(gate, 200, 190)
    assert at_limit.passed is True
    assert at_limit.reason == "drop 5% ≤ max_drop 5%"
    beyond = one(gate, 200, 189.9)
    assert beyond.passed is False
    assert beyond.reason == "drop 5.05% > max_drop 5%"


def test_a_relative_rise_exactly_at_the_percent_passes_despite_float_rounding() -> None:
    # 0.8 * 1.01 is 0.8080000000000001; 1% of 0.8 is 0.008.
    gate = Gate("loss", direction="lower", max_rise=Threshold(1.0, relative=True))
    assert one(gate, 0.8, 0.8 * 1.01).passed
    assert not one(gate, 0.8, 0.8081).passed


@pytest.mark.parametrize("relative", [False, True])
def test_a_change_of_exactly_zero_is_neither_a_drop_nor_a_rise(relative: bool) -> None:
    gate = Gate("acc", max_drop=Threshold(0.0, relative), max_rise=Threshold(0.0, relative))
    for value in (0.0, 0.9):
        result = one(gate, value, value)
        assert result.passed is True
        assert result.reason == "no drop; no rise"


def test_max_drop_of_zero_tolerates_float_rounding_of_an_unchanged_metric() -> None:
    # 0.1 + 0.2 is 0.30000000000000004: the "drop" to 0.3 is rounding, not a change.
    gate = Gate("acc", max_drop=Threshold(0.0))
    assert one(gate, 0.1 + 0.2, 0.3).passed
    assert not one(gate, 0.3, 0.2999).passed


def test_min_of_zero_tolerates_float_rounding_below_it() -> None:
    assert one(Gate("gain", min=0.0), 1.0, 0.1 + 0.2 - 0.3 - 1e-16).passed
    assert not one(Gate("gain", min=0.0), 1.0, -1e-9).passed


def test_without_a_base_value_both_movement_checks_are_skipped_and_named() -> None:
    gate = Gate("acc", max_drop=Threshold(0.01), max_rise=Threshold(0.5))
    result = one(gate, None, 0.6)
    assert result.passed is True
    assert result.reason == "no base value for max_drop; no base value for max_rise"


def test_a_missing_base_for_max_drop_does_not_skip_a_failing_max_rise() -> None:
    gate = Gate("acc", max=0.5, max_drop=Threshold(0.01), max_rise=Threshold(0.1))
    result = one(gate, None, 0.6)
    assert result.passed is False
    assert result.reason == "0.6 > max 0.5"


def test_a_nan_base_value_is_no_base_value() -> None:
    # A NaN at the base gives no drop to measure; "drop nan ≤ max_drop" would read as a check.
    gate = Gate("acc", max_drop=Threshold(0.01), max_rise=Threshold(5.0, relative=True))
    result = one(gate, float("nan"), 0.6)
    assert result.passed is True
    assert result.reason == "no base value for max_drop; no base value for max_rise"


def test_a_gate_whose_metric_is_found_nowhere_does_not_skip_the_gates_after_it() -> None:
    old: Files = {M: {"acc": 0.9, "loss": 0.2}}
    new: Files = {M: {"acc": 0.8, "loss": 0.3}}
    gates = [Gate("f1", min=0.5), Gate("acc", min=0.85), Gate("loss", max=0.5)]
    results = evaluate_gates(gates, old, new)
    assert [(r.metric, r.file, r.passed) for r in results] == [
        ("f1", None, False),
        ("acc", M, False),
        ("loss", M, True),
    ]
    assert results[0].gate == gates[0]
    assert results[0].passed is False
    assert verdict(results) == "failed"


def test_a_path_gate_on_a_file_without_a_metrics_extension() -> None:
    # A metrics file of any other name is read as YAML; its path still prefixes the key.
    old: Files = {"results/scores": {"acc": 0.9}, M: {"acc": 0.99}}
    new: Files = {"results/scores": {"acc": 0.7}, M: {"acc": 0.99}}
    (result,) = evaluate_gates([Gate("results/scores:acc", min=0.8)], old, new)
    assert (result.file, result.metric, result.passed) == ("results/scores", "acc", False)


def test_a_path_gate_on_an_absent_file_keeps_the_colons_of_its_metric() -> None:
    (result,) = evaluate_gates([Gate("eval.json:f1:macro", min=0.5)], {}, {})
    assert (result.file, result.metric) == ("eval.json", "f1:macro")
    assert result.reason == "f1:macro missing at head (expected in eval.json)"


def test_a_metric_named_like_a_file_prefix_is_not_split_at_a_non_colon() -> None:
    old: Files = {"a.json": {"x": 1}, "b.json": {"a.jsonx:acc": 0.9}}
    (result,) = evaluate_gates([Gate("a.jsonx:acc", min=0.5)], old, old)
    assert (result.file, result.metric, result.passed) == ("b.json", "a.jsonx:acc", True)


# --- per-file noise ----------------------------------------------------------------------------


def test_per_file_noise_lets_a_drop_within_it_pass() -> None:
    gate = Gate("accuracy", max_drop=Threshold(0.01))
    result = one(gate, 0.90, 0.885, **{"metrics.json:accuracy": Stat(0.885, 0.02, 5)})
    assert result.passed is True
    assert result.within_noise is True
    assert result.reason == "drop 0.015 > max_drop 0.01, but within noise (±0.02)"


def test_per_file_noise_wins_over_the_metrics_noise_in_every_file() -> None:
    gate = Gate("acc", max_drop=Threshold(0.01))
    old: Files = {"a.json": {"acc": 0.90}, "b.json": {"acc": 0.90}}
    new: Files = {"a.json": {"acc": 0.885}, "b.json": {"acc": 0.885}}
    noise = {"a.json:acc": Stat(0.885, 0.001, 5), "acc": Stat(0.885, 0.05, 5)}
    results = evaluate_gates([gate], old, new, noise)
    assert [(r.file, r.passed, r.within_noise) for r in results] == [
        ("a.json", False, False),
        ("b.json", True, True),
    ]


def test_noise_of_another_file_does_not_apply() -> None:
    gate = Gate("acc", max_drop=Threshold(0.01))
    noise = {"other.json:acc": Stat(0.885, 0.05, 5)}
    (result,) = evaluate_gates([gate], {M: {"acc": 0.90}}, {M: {"acc": 0.885}}, noise)
    assert result.passed is False
    assert result.within_noise is False


def test_noise_that_passes_every_check_still_marks_the_result() -> None:
    result = one(Gate("acc", min=0.5), 0.90, 0.89, acc=Stat(0.89, 0.02, 3))
    assert (result.passed, result.within_noise) == (True, True)


def test_a_change_as_large_as_the_spread_is_not_within_noise() -> None:
    gate = Gate("latency", max_rise=Threshold(1))
    result = one(gate, 100, 104, latency=Stat(104, 4.0, 5))
    assert (result.passed, result.within_noise) == (False, False)


# --- direction ---------------------------------------------------------------------------------


def test_no_change_is_no_improvement_in_either_direction() -> None:
    assert not improved(Gate("acc"), 0.0)
    assert not improved(Gate("loss", direction="lower"), 0.0)
