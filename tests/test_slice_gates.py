"""Slice gates: `*` matches one key segment; the worst slice, folding, and "matched no metric"."""

from __future__ import annotations

import pytest

from bot.core.config import parse_config
from bot.core.gates import Gate, Threshold, evaluate_gates, verdict
from bot.core.slice_gates import (
    SliceGate,
    evaluate_with_slices,
    expand,
    is_pattern,
    margin,
    matches,
    render_slices,
    summarise_slices,
)

F1 = Gate("per_class.*.f1", min=0.7)


def classes(**f1: float) -> dict[str, dict[str, float | str]]:
    return {"metrics.json": {f"per_class.{name}.f1": value for name, value in f1.items()}}


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "matched"),
    [
        ("per_class.*.f1", "per_class.cat.f1", True),
        ("per_class.*.f1", "per_class.a.b.f1", False),
        ("per_class.*.f1", "per_class..f1", False),
        ("per_class.*.f1", "per_class.cat.f1.mean", False),
        ("per_class.*.f1", "xper_class.cat.f1", False),
        ("per_class.*.f1", "per_classXcat.f1", False),
        ("per_class.*", "per_class.cat", True),
        ("per_class.*", "per_class.cat.f1", False),
        ("*.f1", "cat.f1", True),
        ("*.f1", "f1", False),
        ("*", "accuracy", True),
        ("*", "train.accuracy", False),
        ("per_class.c*.f1", "per_class.cat.f1", True),
        ("per_class.c*.f1", "per_class.c.f1", True),
        ("per_class.c*.f1", "per_class.dog.f1", False),
        ("per_class.c*.f1", "per_class.c.x.f1", False),
        ("*.*", "a.b", True),
        ("*.*", "a.b.c", False),
        ("a+b.*", "a+b.x", True),  # the rest of a key is literal, not a regular expression
        ("a+b.*", "aab.x", False),
    ],
)
def test_a_star_matches_exactly_one_key_segment(pattern: str, key: str, matched: bool) -> None:
    assert matches(pattern, key) is matched


def test_is_pattern() -> None:
    assert is_pattern("per_class.*.f1")
    assert not is_pattern("accuracy")


def test_expand_takes_keys_of_base_and_head_sorted() -> None:
    old = classes(cat=0.8, bird=0.9)
    new = classes(cat=0.8, dog=0.75)
    gates = expand(F1, old, new)
    assert [g.metric for g in gates] == [
        "per_class.bird.f1",
        "per_class.cat.f1",
        "per_class.dog.f1",
    ]
    assert gates[0] == SliceGate("per_class.bird.f1", min=0.7, pattern="per_class.*.f1")


def test_expand_scoped_to_one_file() -> None:
    old: dict[str, dict[str, float | str]] = {}
    new = {
        "eval/a.json": {"per_class.cat.f1": 0.9},
        "eval/b.json": {"per_class.dog.f1": 0.9},
    }
    gates = expand(Gate("eval/b.json:per_class.*.f1", min=0.7), old, new)
    assert [g.metric for g in gates] == ["eval/b.json:per_class.dog.f1"]
    results = evaluate_with_slices([Gate("eval/b.json:per_class.*.f1", min=0.7)], old, new)
    assert [(r.file, r.metric, r.passed) for r in results] == [
        ("eval/b.json", "per_class.dog.f1", True)
    ]


# --- evaluation ------------------------------------------------------------------------------


def test_each_slice_is_gated_like_a_plain_gate() -> None:
    old = classes(cat=0.8, dog=0.9)
    new = classes(cat=0.61, dog=0.95)
    results = evaluate_with_slices([F1], old, new)
    plain = evaluate_gates(
        [Gate("per_class.cat.f1", min=0.7), Gate("per_class.dog.f1", min=0.7)], old, new
    )
    assert [(r.metric, r.passed, r.reason) for r in results] == [
        (r.metric, r.passed, r.reason) for r in plain
    ]
    assert [(r.metric, r.passed) for r in results] == [
        ("per_class.cat.f1", False),
        ("per_class.dog.f1", True),
    ]
    assert verdict(results) == "failed"


def test_results_keep_gate_order_and_plain_gates_are_unchanged() -> None:
    old: dict[str, dict[str, float | str]] = {}
    new = {"metrics.json": {"accuracy": 0.9, "per_class.cat.f1": 0.8, "loss": 0.2}}
    gates = [Gate("accuracy", min=0.8), F1, Gate("loss", "lower", max=0.5)]
    results = evaluate_with_slices(gates, old, new)
    assert [r.metric for r in results] == ["accuracy", "per_class.cat.f1", "loss"]
    assert verdict(results) == "passed"


def test_a_slice_missing_at_head_fails() -> None:
    results = evaluate_with_slices([F1], classes(cat=0.8, dog=0.8), classes(cat=0.8))
    assert [(r.metric, r.passed) for r in results] == [
        ("per_class.cat.f1", True),
        ("per_class.dog.f1", False),
    ]
    summary = summarise_slices([F1], results)[0]
    assert summary.headline() == (
        "`per_class.*.f1`: 1 of 2 slices fail; worst slice `per_class.dog.f1` missing at head"
    )


def test_a_pattern_that_matches_nothing_fails() -> None:
    new = {"metrics.json": {"accuracy": 0.9, "per_class.a.b.f1": 0.9}}
    results = evaluate_with_slices([F1], {}, new)
    assert len(results) == 1
    assert results[0].passed is False
    assert results[0].reason == "per_class.*.f1 matched no metric (looked in metrics.json)"
    assert results[0].gate == F1
    assert verdict(results) == "failed"
    summary = summarise_slices([F1], results)[0]
    assert summary.matched_nothing
    assert summary.headline() == "`per_class.*.f1` matched no metric"
    assert render_slices(summary) == "`per_class.*.f1` matched no metric\n"


def test_a_pattern_without_any_metrics_files_fails() -> None:
    results = evaluate_with_slices([F1], {}, {})
    assert (
        results[0].reason == "per_class.*.f1 matched no metric (no metrics files at base or head)"
    )


def test_slice_gates_from_the_configuration() -> None:
    config = parse_config("gates:\n  per_class.*.f1: {min: 0.7}\n")
    results = evaluate_with_slices(config.gates, {}, classes(cat=0.61, dog=0.9))
    assert summarise_slices(config.gates, results)[0].headline() == (
        "`per_class.*.f1`: 1 of 2 slices fail; worst slice `per_class.cat.f1` 0.61 < min 0.7"
    )


# --- the worst slice -------------------------------------------------------------------------


def test_worst_failing_slice_is_furthest_below_the_minimum() -> None:
    new = classes(cat=0.61, dog=0.69, bird=0.65, fish=0.95)
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, new))[0]
    assert summary.worst.metric == "per_class.cat.f1"
    assert [r.metric for r in summary.failed] == [
        "per_class.cat.f1",
        "per_class.bird.f1",
        "per_class.dog.f1",
    ]
    assert [r.metric for r in summary.passed] == ["per_class.fish.f1"]
    assert summary.headline() == (
        "`per_class.*.f1`: 3 of 4 slices fail; worst slice `per_class.cat.f1` 0.61 < min 0.7"
    )


def test_when_all_pass_the_closest_to_its_threshold_is_named() -> None:
    new = classes(cat=0.71, dog=0.9, bird=0.7)
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, new))[0]
    assert not summary.failed
    assert summary.worst.metric == "per_class.bird.f1"  # exactly at the minimum passes
    assert summary.headline() == (
        "`per_class.*.f1`: all 3 slices pass; closest slice `per_class.bird.f1` 0.7 ≥ min 0.7"
    )


def test_worst_is_relative_to_each_slices_own_threshold() -> None:
    # A 5% max_drop: cat drops 0.04 from 0.5 (8%), dog drops 0.06 from 0.9 (6.7%).
    gate = Gate("per_class.*.f1", max_drop=Threshold(5.0, relative=True))
    old, new = classes(cat=0.5, dog=0.9), classes(cat=0.46, dog=0.84)
    summary = summarise_slices([gate], evaluate_with_slices([gate], old, new))[0]
    assert [r.passed for r in summary.results] == [False, False]
    assert summary.worst.metric == "per_class.cat.f1"
    assert margin(summary.results[0]) < margin(summary.results[1])


def test_a_missing_or_non_numeric_slice_is_worse_than_any_number() -> None:
    old = classes(cat=0.1, dog=0.8, bird=0.8)
    new: dict[str, dict[str, float | str]] = {
        "metrics.json": {"per_class.cat.f1": 0.1, "per_class.bird.f1": "n/a"}
    }
    summary = summarise_slices([F1], evaluate_with_slices([F1], old, new))[0]
    assert [r.metric for r in summary.failed][2] == "per_class.cat.f1"
    assert {r.metric for r in summary.failed[:2]} == {"per_class.bird.f1", "per_class.dog.f1"}
    assert summary.headline().endswith("worst slice `per_class.bird.f1` not a number at head")


def test_max_and_lower_direction_slices() -> None:
    gate = Gate("loss.*", "lower", max=0.5)
    new = {"metrics.json": {"loss.train": 0.4, "loss.test": 0.9, "loss.val": 0.6}}
    summary = summarise_slices([gate], evaluate_with_slices([gate], {}, new))[0]
    assert (
        summary.headline() == "`loss.*`: 2 of 3 slices fail; worst slice `loss.test` 0.9 > max 0.5"
    )


def test_slices_in_several_files_name_the_file_of_the_worst() -> None:
    new = {
        "a.json": {"per_class.cat.f1": 0.9},
        "b.json": {"per_class.cat.f1": 0.5},
    }
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, new))[0]
    assert summary.headline() == (
        "`per_class.*.f1`: 1 of 2 slices fail; worst slice `per_class.cat.f1` 0.5 < min 0.7"
        " in `b.json`"
    )


def test_one_slice_is_counted_in_the_singular() -> None:
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, classes(cat=0.9)))[0]
    assert summary.headline() == (
        "`per_class.*.f1`: its 1 slice passes; closest slice `per_class.cat.f1` 0.9 ≥ min 0.7"
    )
    failing = summarise_slices([F1], evaluate_with_slices([F1], {}, classes(cat=0.1)))[0]
    assert failing.headline() == (
        "`per_class.*.f1`: 1 slice fails; worst slice `per_class.cat.f1` 0.1 < min 0.7"
    )


def test_summaries_only_for_pattern_gates_and_a_plain_gate_is_not_a_slice() -> None:
    plain = Gate("per_class.cat.f1", min=0.7)
    new = classes(cat=0.5, dog=0.9)
    gates = [plain, F1]
    results = evaluate_with_slices(gates, {}, new)
    assert len(results) == 3
    summaries = summarise_slices(gates, results)
    assert [s.gate for s in summaries] == [F1]
    assert len(summaries[0].results) == 2  # the plain gate's result is not one of its slices


# --- folding ---------------------------------------------------------------------------------


def test_passing_slices_fold_away_and_failing_ones_are_listed() -> None:
    new = classes(cat=0.61, dog=0.9, bird=0.8, fish=0.75)
    old = classes(cat=0.8, dog=0.9, bird=0.8, fish=0.75)
    summary = summarise_slices([F1], evaluate_with_slices([F1], old, new))[0]
    assert len(summary.passed) == 3
    assert render_slices(summary) == (
        "`per_class.*.f1`: 1 of 4 slices fail; worst slice `per_class.cat.f1` 0.61 < min 0.7\n"
        "\n"
        "| Slice | Base | Head | Gate |\n"
        "|---|---|---|---|\n"
        "| `per_class.cat.f1` | 0.8 | 0.61 | ❌ 0.61 < min 0.7 |\n"
        "\n"
        "<details><summary>3 passing slices</summary>\n"
        "\n"
        "| Slice | Base | Head | Gate |\n"
        "|---|---|---|---|\n"
        "| `per_class.fish.f1` | 0.75 | 0.75 | ✅ 0.75 ≥ min 0.7 |\n"
        "| `per_class.bird.f1` | 0.8 | 0.8 | ✅ 0.8 ≥ min 0.7 |\n"
        "| `per_class.dog.f1` | 0.9 | 0.9 | ✅ 0.9 ≥ min 0.7 |\n"
        "\n"
        "</details>\n"
    )


def test_folding_caps_the_rows_listed() -> None:
    new = classes(**{f"c{i:03}": 0.5 for i in range(30)}, **{f"p{i:03}": 0.9 for i in range(40)})
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, new))[0]
    assert (len(summary.failed), len(summary.passed)) == (30, 40)
    text = render_slices(summary, limit=35)
    assert text.count("| ❌") == 30
    assert text.count("| ✅") == 5
    assert "<details><summary>40 passing slices</summary>" in text
    assert "… and 35 more passing slices" in text
    capped = render_slices(summary, limit=10)
    assert capped.count("| ❌") == 10
    assert "… and 20 more failing slices" in capped
    assert capped.count("| ✅") == 0
    assert "… and 40 more passing slices" in capped


def test_slice_names_stay_inside_code_spans() -> None:
    hostile = "per_class.`@admin [x](http://evil) | <b>`.f1"
    summary = summarise_slices([F1], evaluate_with_slices([F1], {}, {"m.json": {hostile: 0.1}}))[0]
    text = render_slices(summary)
    assert "worst slice ``per_class.`@admin [x](http://evil) | <b>`.f1`` 0.1" in text
    assert "| ``per_class.`@admin [x](http://evil) \\| <b>`.f1`` |" in text
