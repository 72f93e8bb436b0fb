"""Metrics read, flattened and diffed as `dvc metrics diff` does; key lines; repeat stats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.core.metrics import (
    MetricValue,
    Stat,
    aggregate,
    diff_metrics,
    flatten_metrics,
    format_change,
    format_value,
    locate_key,
    parse_metrics,
)
from bot.errors import MetricsFileError

DVC = Path(__file__).parent / "fixtures" / "dvc"
Files = dict[str, dict[str, MetricValue]]


def read(relative: str) -> str:
    return (DVC / relative).read_text()


# ---------------------------------------------------------------------------- flattening


def test_dvclive_json_metrics_flatten_nested_keys_with_dots() -> None:
    metrics = parse_metrics(read("example-get-started/eval/live/metrics.json"), "metrics.json")
    assert metrics == {
        "avg_prec.train": 0.957035519466975,
        "avg_prec.test": 0.9014016422240393,
        "roc_auc.train": 0.9774311166774401,
        "roc_auc.test": 0.9319648794149968,
    }


def test_json_keeps_numbers_strings_and_bools_and_drops_lists_and_nulls() -> None:
    metrics = parse_metrics(read("handwritten/metrics.json"), "eval/metrics.json")
    assert metrics == {
        "accuracy": 0.9125,
        "model": "xgboost",
        "per_class.cat.precision": 0.93,
        "per_class.cat.recall": 0.90,
        "per_class.dog.precision": 0.89,
        "per_class.dog.recall": 0.92,
        "calibrated": True,
    }


def test_yaml_drops_lists_nulls_dates_and_empty_mappings_and_reads_yaml_1_2() -> None:
    metrics = parse_metrics(read("handwritten/metrics.yaml"), "metrics.yaml")
    assert metrics == {
        "step": 8,
        "accuracy": 0.9125,
        "loss": 0.001,
        "early_stopped": "no",
        "per_class.cat.precision": 0.93,
        "per_class.cat.recall": 0.90,
        "per_class.dog.precision": 0.89,
        "per_class.dog.recall": 0.92,
    }


def test_toml_drops_arrays_datetimes_and_arrays_of_tables() -> None:
    metrics = parse_metrics(read("handwritten/metrics.toml"), "metrics.toml")
    assert metrics == {
        "accuracy": 0.9125,
        "per_class.cat.precision": 0.93,
        "per_class.cat.recall": 0.90,
        "per_class.dog.big.precision": 0.89,
    }


def test_unknown_extension_is_read_as_yaml_like_dvc() -> None:
    assert parse_metrics("acc: 0.9\n", "metrics.txt") == {"acc": 0.9}


def test_file_holding_one_number_is_keyed_by_the_empty_string() -> None:
    assert parse_metrics("0.91\n", "auc.metric") == {"": 0.91}
    assert flatten_metrics(0) == {}  # DVC's `val or {}`
    assert flatten_metrics([1, 2]) == {}


def test_nested_and_dotted_key_clash_names_the_file_and_key() -> None:
    with pytest.raises(MetricsFileError, match=r"^m.json: key 'a.b' appears"):
        parse_metrics('{"a": {"b": 1}, "a.b": 2}', "m.json")


@pytest.mark.parametrize(
    ("content", "path", "kind"),
    [("{", "m.json", "JSON"), ("a = ", "m.toml", "TOML"), ("a: [", "m.yaml", "YAML")],
)
def test_malformed_metrics_file_names_the_file_and_format(
    content: str, path: str, kind: str
) -> None:
    with pytest.raises(MetricsFileError, match=f"^{path}: invalid {kind}"):
        parse_metrics(content, path)


def test_metrics_file_that_is_not_utf8_names_the_file() -> None:
    with pytest.raises(MetricsFileError, match=r"^m.json: not UTF-8"):
        parse_metrics(b"\xff\xfe{", "m.json")


# ---------------------------------------------------------------------------- diff
# Cases mirror tests/func/metrics/test_diff.py in iterative/dvc.


def test_changed_metric_has_old_new_and_diff_unchanged_ones_are_left_out() -> None:
    old: Files = {"m.yaml": {"a.b.c": 1, "a.b.d": 1, "a.b.e": "1"}}
    new: Files = {"m.yaml": {"a.b.c": 3, "a.b.d": 1, "a.b.e": "3"}}
    assert diff_metrics(old, new) == {
        "m.yaml": {
            "a.b.c": {"old": 1, "new": 3, "diff": 2},
            "a.b.e": {"old": "1", "new": "3"},
        }
    }


def test_nothing_changed_gives_an_empty_diff() -> None:
    metrics = {"m.json": {"a": 1, "b": 0.5}}
    assert diff_metrics(metrics, metrics) == {}


def test_all_includes_unchanged_metrics_with_zero_diff() -> None:
    old = {"metrics.yaml": {"foo": 1, "xyz": 10}}
    new = {"metrics.yaml": {"foo": 3, "xyz": 10}}
    assert diff_metrics(old, new, all=True) == {
        "metrics.yaml": {
            "foo": {"old": 1, "new": 3, "diff": 2},
            "xyz": {"old": 10, "new": 10, "diff": 0},
        }
    }


def test_new_metric_has_old_none_and_no_diff() -> None:
    assert diff_metrics({}, {"m.json": {"a.b.c": 1, "a.b.d": 1}}) == {
        "m.json": {"a.b.c": {"old": None, "new": 1}, "a.b.d": {"old": None, "new": 1}}
    }


def test_removed_metric_or_deleted_file_has_new_none_and_no_diff() -> None:
    assert diff_metrics({"m.json": {"a": 1}}, {}) == {"m.json": {"a": {"old": 1, "new": None}}}
    assert diff_metrics({"m.json": {"a": 1, "b": 2}}, {"m.json": {"b": 2}}) == {
        "m.json": {"a": {"old": 1, "new": None}}
    }


def test_non_numeric_change_has_no_diff_and_equal_strings_are_unchanged() -> None:
    old: Files = {"m.json": {"model": "rf", "tag": "x", "n": 1}}
    new: Files = {"m.json": {"model": "xgb", "tag": "x", "n": "one"}}
    assert diff_metrics(old, new) == {
        "m.json": {"model": {"old": "rf", "new": "xgb"}, "n": {"old": 1, "new": "one"}}
    }
    assert diff_metrics(old, new, all=True)["m.json"]["tag"] == {"old": "x", "new": "x"}


def test_diff_is_not_rounded_and_int_equal_to_float_is_unchanged() -> None:
    diff = diff_metrics({"m": {"a": 0.1, "b": 1}}, {"m": {"a": 0.3, "b": 1.0}})
    assert diff == {"m": {"a": {"old": 0.1, "new": 0.3, "diff": 0.3 - 0.1}}}
    assert diff["m"]["a"]["diff"] == 0.19999999999999998


def test_bools_diff_as_numbers_like_python() -> None:
    assert diff_metrics({"m": {"ok": False}}, {"m": {"ok": True}}) == {
        "m": {"ok": {"old": False, "new": True, "diff": 1}}
    }


def test_nan_never_equals_itself_so_it_is_always_reported() -> None:
    diff = diff_metrics({"m": {"x": math.nan}}, {"m": {"x": math.nan}})
    assert math.isnan(diff["m"]["x"]["diff"])


def test_paths_and_keys_come_back_sorted() -> None:
    diff = diff_metrics({"b.json": {"z": 1, "a": 1}, "a.json": {"k": 1}}, {})
    assert list(diff) == ["a.json", "b.json"]
    assert list(diff["b.json"]) == ["a", "z"]


# ---------------------------------------------------------------------------- locate_key


def test_locate_key_in_nested_json() -> None:
    content = read("example-get-started/eval/live/metrics.json")
    assert locate_key(content, "eval/live/metrics.json", "avg_prec.train") == 3
    assert locate_key(content, "eval/live/metrics.json", "roc_auc.test") == 8
    assert locate_key(content, "eval/live/metrics.json", "roc_auc") == 6
    assert locate_key(content, "eval/live/metrics.json", "recall") is None


def test_locate_key_in_json_skips_strings_and_arrays_that_look_like_keys() -> None:
    content = '{\n "a": [{"b": 1}, "c"],\n "s": "{\\"b\\": 2}",\n "b": 3\n}'
    assert locate_key(content, "m.json", "b") == 4


def test_locate_key_in_yaml_including_flow_mappings() -> None:
    content = read("handwritten/metrics.yaml")
    assert locate_key(content, "metrics.yaml", "accuracy") == 3
    assert locate_key(content, "metrics.yaml", "per_class.dog.recall") == 8
    assert locate_key(content, "metrics.yaml", "nope") is None


def test_locate_key_in_toml_tables_and_inline_tables() -> None:
    content = read("handwritten/metrics.toml")
    assert locate_key(content, "metrics.toml", "accuracy") == 2
    assert locate_key(content, "metrics.toml", "per_class.cat.recall") == 8
    assert locate_key(content, "metrics.toml", "per_class.dog.big.precision") == 11
    assert locate_key(content, "metrics.toml", "runs.seed") is None


def test_locate_key_in_toml_dotted_keys_and_after_multiline_strings() -> None:
    content = 'note = """\naccuracy = 1\n"""\neval.accuracy = 0.9\n'
    assert locate_key(content, "m.toml", "eval.accuracy") == 4
    assert locate_key(content, "m.toml", "accuracy") is None


def test_locate_key_prefers_a_literal_dotted_key() -> None:
    assert locate_key('{"a": {"b": 1},\n"a.b": 2}', "m.json", "a.b") == 2


def test_locate_key_in_unparsable_file_is_none() -> None:
    assert locate_key("{", "m.json", "a") is None
    assert locate_key("a: [", "m.yaml", "a") is None
    assert locate_key(b"\xff", "m.yaml", "a") is None


# ---------------------------------------------------------------------------- repeats


def test_aggregate_gives_mean_and_sample_standard_deviation() -> None:
    stats = aggregate([{"acc": 0.90}, {"acc": 0.92}, {"acc": 0.94}])
    assert stats["acc"].mean == pytest.approx(0.92)
    assert stats["acc"].spread == pytest.approx(0.02)
    assert stats["acc"].n == 3


def test_aggregate_of_one_run_has_zero_spread() -> None:
    assert aggregate([{"acc": 0.9}]) == {"acc": Stat(0.9, 0.0, 1)}


def test_aggregate_counts_only_runs_that_have_a_finite_number() -> None:
    runs: list[dict[str, float]] = [{"a": 1.0, "b": math.nan}, {"a": 3.0}]
    assert aggregate(runs) == {"a": Stat(2.0, math.sqrt(2), 2)}


def test_change_smaller_than_spread_is_within_noise() -> None:
    stat = Stat(mean=0.92, spread=0.02, n=5)
    assert stat.within_noise(0.01)
    assert stat.within_noise(-0.019)
    assert not stat.within_noise(0.02)
    assert not Stat(0.9, 0.0, 1).within_noise(0.0001)


# ---------------------------------------------------------------------------- display


def test_values_display_like_dvc_table_with_five_decimals() -> None:
    assert format_value(1.23456789) == "1.23457"
    assert format_value(3) == "3"
    assert format_value(None) == "-"
    assert format_value("xgb") == "xgb"
    assert format_value(0.0000012345678) == "1.2346e-06"
    assert format_change(0.01) == "+0.01"
    assert format_change(-2) == "-2"
    assert format_change(0) == "0"


# --- issue 14: booleans and strings in aggregate, TOML quoting, empty JSON containers -----------


def test_aggregate_skips_booleans_and_strings_and_counts_only_numbers() -> None:
    runs: list[dict[str, object]] = [
        {"acc": 1, "flag": True, "name": "a"},
        {"acc": 3, "flag": False, "name": "b"},
        {"acc": True},
        {"acc": "5"},
    ]
    assert aggregate(runs) == {"acc": Stat(2.0, math.sqrt(2), 2)}  # type: ignore[arg-type]
    assert aggregate([{"flag": True}, {"flag": False}]) == {}
    assert aggregate([{"n": 2}, {"n": 4}]) == {"n": Stat(3.0, math.sqrt(2), 2)}
    assert list(aggregate([{"b": 1.0, "a": 2.0}])) == ["a", "b"]


def test_within_noise_is_a_change_strictly_smaller_than_the_spread() -> None:
    stat = Stat(0.9, 0.01, 3)
    assert stat.within_noise(0.005) and stat.within_noise(-0.005)
    assert not stat.within_noise(0.01) and not stat.within_noise(-0.01)
    assert not Stat(0.9, 0.0, 1).within_noise(0.0)


def test_locate_key_in_toml_with_single_quoted_keys_and_tables() -> None:
    content = "['my table']\n'a.b' = 1\n\"c\" = 2\n[x.'y z']\nw = 3\n"
    assert locate_key(content, "m.toml", "my table.a.b") == 2
    assert locate_key(content, "m.toml", "my table.c") == 3
    assert locate_key(content, "m.toml", "x.y z.w") == 5
    assert locate_key(content, "m.toml", "w") is None


@pytest.mark.parametrize("quote", ['"""', "'''"])
def test_locate_key_in_toml_skips_the_lines_of_a_multiline_string(quote: str) -> None:
    content = f"note = {quote}\nacc = 0\n{quote}\nacc = 1\n"
    assert locate_key(content, "m.toml", "acc") == 4
    # Closed on its own line, the string hides nothing.
    closed = f"note = {quote}x{quote}\nacc = 1\n"
    assert locate_key(closed, "m.toml", "acc") == 2
    # The other kind of quote does not close it.
    other = '"""' if quote == "'''" else "'''"
    content = f"note = {quote}\n{other}\nacc = 0\n{quote}\nacc = 1\n"
    assert locate_key(content, "m.toml", "acc") == 5


def test_locate_key_in_toml_skips_comments_arrays_of_tables_and_broken_lines() -> None:
    content = "# acc = 0\n[[runs]]\nacc = 1\n[t]\n= 2\nacc x\nacc = 3\n"
    assert locate_key(content, "m.toml", "t.acc") == 7
    assert locate_key(content, "m.toml", "acc") is None
    assert locate_key("[t\nacc = 1\n", "m.toml", "acc") == 2  # a broken header is skipped


def test_locate_key_in_json_past_empty_and_nested_arrays_and_objects() -> None:
    content = (
        '{\n"a": [],\n"b": [ ],\n"c": {},\n"d": { },\n"e": [[], {}, [1, {"x": 1}]],\n"f": 1\n}'
    )
    assert locate_key(content, "m.json", "f") == 7
    assert locate_key(content, "m.json", "a") == 2
    assert locate_key(content, "m.json", "d") == 5
    assert locate_key(content, "m.json", "e.x") is None  # inside a list: DVC drops lists
    assert locate_key('{"a" : {"b" :\n 1}}', "m.json", "a.b") == 1
    assert locate_key('{"a": [1 2]}', "m.json", "a") is None
    assert locate_key('{"a": 1 "b": 2}', "m.json", "a") is None


def test_locate_key_in_toml_reads_spaces_and_odd_keys_exactly() -> None:
    # Spaces inside a table header and around dots; `X` is a key character, not a space.
    assert locate_key("[ ab . c ]\nd = 1\n", "m.toml", "ab.c.d") == 2
    assert locate_key("[Xa]\nb = 1\n", "m.toml", "Xa.b") == 2
    assert locate_key("a X= 1\na = 2\n", "m.toml", "a") == 2
    # A lone `[` is no header: the keys after it stay at the top level.
    assert locate_key("[\nacc = 1\n", "m.toml", "acc") == 2
    # Single quotes: the key ends at the next quote; an empty key is a key.
    assert locate_key("'k' = 'v'\n", "m.toml", "k") == 1
    assert locate_key("'' = 1\n", "m.toml", "") == 1
    assert locate_key("# acc = 1\n\nacc = 2\n", "m.toml", "acc") == 3


def test_locate_key_in_toml_skips_the_lines_of_an_array_that_spans_lines() -> None:
    # `["a"],` inside the array is no table header: `acc` is still at the top level.
    content = (
        'pairs = [\n  ["a"],\n  ["]", "#"], # ]\n  [\'[\']\n]\nacc = 0.9\n[t]\nx = [\n]\ny = 1\n'
    )
    assert locate_key(content, "m.toml", "acc") == 6
    assert locate_key(content, "m.toml", "t.y") == 10
    assert locate_key("a = [1, [2]] # [\nb = 1\n", "m.toml", "b") == 2
    assert locate_key('a = ["\\"]"\n  , 1]\nb = 1\n', "m.toml", "b") == 3


def test_locate_key_in_compact_json_and_after_a_leading_newline() -> None:
    compact = '{"a":{"b":1},"c":[{"d":2}],"e":"x","f":3}'
    assert [locate_key(compact, "m.json", key) for key in ("a.b", "c", "e", "f")] == [1, 1, 1, 1]
    assert locate_key(compact, "m.json", "c.d") is None  # inside a list: DVC drops it
    spaced = '\n\n{\n  "a" :\n  {\n    "b"\t:\r\n 1 } ,\n  "c": [ 1 ,\n 2 ]\n, "d": 4}'
    assert [locate_key(spaced, "m.json", key) for key in ("a", "a.b", "c", "d")] == [4, 6, 8, 10]


def test_a_bare_value_against_a_mapping_reads_unparsable_unless_it_is_empty() -> None:
    # DVC's `_flatten`: an empty side (0, "", []) gives None for every key, another bare
    # value "unable to parse".
    mapping = {"m.json": {"acc": 1}}
    assert diff_metrics({"m.json": {"": "5"}}, mapping) == {
        "m.json": {"acc": {"old": "unable to parse", "new": 1}}
    }
    for empty in (0, "", "[]"):
        assert diff_metrics({"m.json": {"": empty}}, mapping) == {
            "m.json": {"acc": {"old": None, "new": 1}}
        }
        assert diff_metrics(mapping, {"m.json": {"": empty}}) == {
            "m.json": {"acc": {"old": 1, "new": None}}
        }


def test_a_key_both_nested_and_dotted_is_refused_with_the_file_named() -> None:
    clash = {"a": {"b": 1}, "a.b": 2}
    with pytest.raises(MetricsFileError) as caught:
        flatten_metrics(clash)
    assert str(caught.value) == "<metrics>: key 'a.b' appears both nested and dotted"
    with pytest.raises(MetricsFileError) as caught:
        parse_metrics('{"a": {"b": 1}, "a.b": 2}', "m.json")
    assert str(caught.value) == "m.json: key 'a.b' appears both nested and dotted"


def test_python_metrics_files_are_read_as_literals() -> None:
    assert parse_metrics("acc = 0.9\nclass Eval:\n    loss = 0.1\n", "metrics.py") == {
        "acc": 0.9,
        "Eval.loss": 0.1,
    }
    with pytest.raises(MetricsFileError) as caught:
        parse_metrics("acc = (", "m.py")
    assert str(caught.value) == "m.py: invalid Python: '(' was never closed (<unknown>, line 1)"
    with pytest.raises(MetricsFileError) as caught:
        parse_metrics("x = [" + "1," * 100_001 + "]\n", "m.py")
    assert str(caught.value) == (
        "m.py: over a parsing limit: more than 100,000 nodes (keys, values and collections)"
    )


def test_bare_values_diff_as_dvc_diffs_them() -> None:
    def bare(text: str) -> dict[str, dict[str, MetricValue]]:
        return {"m.json": {"": text}}

    # One-element lists compare their elements; other lists, and a list against a number, not.
    assert diff_metrics(bare("[1]"), bare("[3]")) == {
        "m.json": {"": {"old": 1, "new": 3, "diff": 2}}
    }
    assert diff_metrics(bare("[2]"), bare("[2]")) == {}
    assert diff_metrics(bare("[2]"), bare("[2]"), all=True) == {
        "m.json": {"": {"old": 2, "new": 2, "diff": 0}}
    }
    lists: object = {"m.json": {"": {"old": [1, 2], "new": [1, 3]}}}  # lists: no MetricValue
    assert diff_metrics(bare("[1, 2]"), bare("[1, 3]")) == lists
    one: object = {"m.json": {"": {"old": [1], "new": 1}}}
    assert diff_metrics(bare("[1]"), bare("1"), all=True) == one
    assert diff_metrics(bare("3"), bare("5")) == {"m.json": {"": {"old": 3, "new": 5, "diff": 2}}}
    assert diff_metrics(bare("3"), bare("3")) == {}
    # A bare value on the head side of a mapping; a bare mapping is flattened.
    assert diff_metrics({"m.json": {"acc": 1}}, bare("5")) == {
        "m.json": {"acc": {"old": 1, "new": "unable to parse"}}
    }
    assert diff_metrics(bare('{"a": {"b": 1}}'), {"m.json": {"a.b": 2}}) == {
        "m.json": {"a.b": {"old": 1, "new": 2, "diff": 1}}
    }


def test_a_small_value_keeps_five_decimals_unless_they_would_all_be_zero() -> None:
    assert format_value(0.0123456) == "0.01235"
    assert format_value(0.000001234567) == "1.2346e-06"
