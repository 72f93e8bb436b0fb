"""Rendering: golden comments, the data block, the 65,536 limit, and check-run output."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.dvc import DataChange, Output, ParamChange, diff_outputs, outputs
from bot.core.evaluation_result import Baseline, Evaluation
from bot.core.gates import Gate, Threshold, evaluate_gates
from bot.core.metrics import MetricValue, Stat, aggregate
from bot.core.report import (
    ANNOTATIONS_PER_REQUEST,
    COMMENT_LIMIT,
    DATA_LIMIT,
    DATA_PREFIX,
    MARKER,
    SUMMARY_LIMIT,
    annotation_batches,
    conclusion,
    human_size,
    parse_data,
    render_check_run,
    render_comment,
    text_length,
)

GOLDEN = Path(__file__).parent / "golden"
DVC = Path(__file__).parent / "fixtures" / "dvc"
HEAD = "9a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
BASE = "edcf3adc979e5ebc257cc498c1522d96aabbccdd"
GATES = [
    Gate("accuracy", min=0.87, max_drop=Threshold(0.01)),
    Gate("loss", direction="lower", max_rise=Threshold(5.0, relative=True)),
]
METRICS_JSON = '{\n  "accuracy": 0.861,\n  "loss": 0.35,\n  "f1": 0.84,\n  "epochs": 20\n}\n'


def assert_golden(name: str, text: str) -> None:
    """Compare byte for byte with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(text.encode())
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text.encode() == path.read_bytes(), f"{name} differs (UPDATE_GOLDEN=1 to accept)"


def baselines(count: int) -> list[Baseline]:
    return [
        Baseline(
            f"{index:02x}c0ffee{index:02x}" + "0" * 28,
            {"metrics.json": {"accuracy": 0.86 + index / 1000, "loss": 0.36 - index / 2000}},
        )
        for index in range(count)
    ]


def improving() -> Evaluation:
    old: dict[str, dict[str, MetricValue]] = {
        "metrics.json": {"accuracy": 0.871, "loss": 0.35, "f1": 0.84, "epochs": 20}
    }
    new: dict[str, dict[str, MetricValue]] = {
        "metrics.json": {"accuracy": 0.884, "loss": 0.32, "f1": 0.84, "epochs": 20}
    }
    return Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        old=old,
        new=new,
        gates=evaluate_gates(GATES, old, new),
        param_changes=[ParamChange("params.yaml", "train.lr", 0.01, 0.005)],
        trend=baselines(6),
        log_tail="epoch 19/20 loss=0.321\nepoch 20/20 loss=0.320\nsaved model.pkl\n",
    )


def regressing() -> Evaluation:
    old: dict[str, dict[str, MetricValue]] = {
        "metrics.json": {"accuracy": 0.902, "loss": 0.30, "f1": 0.84, "epochs": 20}
    }
    new: dict[str, dict[str, MetricValue]] = {
        "metrics.json": {"accuracy": 0.861, "loss": 0.35, "f1": 0.84, "epochs": 20}
    }
    gates = [*GATES, Gate("eval/metrics.json:recall", min=0.8)]
    images_old = Output("data/images", "edcf3adc979e5ebc257cc498c1522d96.dir", 200054603, 1848)
    images_new = Output("data/images", "9a1b2c3d4e5f60718293a4b5c6d7e8f9.dir", 212454603, 1912)
    return Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        old=old,
        new=new,
        gates=evaluate_gates(gates, old, new),
        data_changes=[DataChange("data/images", "modified", images_old, images_new)],
        log_tail=(
            "\x1b[33mWARNING\x1b[0m: class imbalance in data/images\n"
            "progress 10%\rprogress 100%\n"
            "accuracy=0.861 loss=0.35\n"
        ),
        details_url="https://mlgate.example.com/runs/42",
        sources={"metrics.json": METRICS_JSON},
    )


def irrelevant() -> Evaluation:
    return Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        skipped="no changed file matches `triggers` (data: **/*.dvc, dvc.lock; code: src/**)",
    )


def data_and_trend() -> Evaluation:
    base_files = {
        "dvc.lock": (DVC / "semaphore-demo-mlops/dvc.lock").read_text(),
        "data/raw.dvc": (
            "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 5000\n  path: raw\n"
        ),
    }
    head_files = {
        "dvc.lock": (DVC / "semaphore-demo-mlops/dvc.lock.files-listing-excerpt").read_text(),
        "data/labels.dvc": (
            "outs:\n- md5: fedcba9876543210fedcba9876543210\n  size: 1234567\n"
            "  hash: md5\n  path: labels.csv\n"
        ),
    }
    runs = [{"accuracy": 0.881}, {"accuracy": 0.889}, {"accuracy": 0.885}]
    noise = aggregate(runs)
    old: dict[str, dict[str, MetricValue]] = {"metrics.json": {"accuracy": 0.883, "loss": 0.33}}
    new: dict[str, dict[str, MetricValue]] = {
        "metrics.json": {"accuracy": noise["accuracy"].mean, "loss": 0.33}
    }
    return Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        old=old,
        new=new,
        gates=evaluate_gates(GATES, old, new, noise=noise),
        data_changes=diff_outputs(outputs(base_files), outputs(head_files)),
        trend=baselines(25),
        noise=noise,
        notes=["evaluation waits for a maintainer's /evaluate on 9a1b2c3"],
    )


@pytest.mark.parametrize(
    ("name", "evaluation"),
    [
        ("improving.md", improving()),
        ("regressing.md", regressing()),
        ("irrelevant.md", irrelevant()),
        ("data_and_trend.md", data_and_trend()),
    ],
)
def test_comment_matches_golden(name: str, evaluation: Evaluation) -> None:
    assert_golden(name, render_comment(evaluation))


def test_check_run_summary_matches_golden() -> None:
    output = render_check_run(regressing())
    assert output.title == "Quality gate failed: 3 of 3 gates"
    assert output.conclusion == "failure"
    assert_golden("check_run_regressing.md", output.summary)


# ---------------------------------------------------------------------------- structure


def test_comment_starts_with_marker_and_ends_with_the_data_block() -> None:
    body = render_comment(regressing())
    assert body.startswith(MARKER + "\n")
    assert body.endswith(" -->")
    assert body.rfind(DATA_PREFIX) > body.rfind("</details>")


def test_data_block_carries_shas_verdict_metrics_gates_and_data_changes() -> None:
    data = parse_data(render_comment(regressing()))
    assert data is not None
    assert (data["head"], data["base"], data["verdict"]) == (HEAD, BASE, "failed")
    accuracy = data["metrics"]["metrics.json"]["accuracy"]
    assert accuracy["old"] == 0.902 and accuracy["new"] == 0.861
    assert accuracy["diff"] == 0.861 - 0.902  # unrounded, as `dvc metrics diff --json`
    assert accuracy["gate"] == {
        "passed": False,
        "reason": "0.861 < min 0.87; drop 0.041 > max_drop 0.01",
        "within_noise": False,
    }
    assert data["metrics"]["metrics.json"]["f1"] == {"old": 0.84, "new": 0.84, "diff": 0.0}
    assert data["gates_not_found"][0]["metric"] == "recall"
    assert data["data"] == [
        {
            "path": "data/images",
            "change": "modified",
            "old": {
                "hash": "edcf3adc979e5ebc257cc498c1522d96.dir",
                "size": 200054603,
                "nfiles": 1848,
            },
            "new": {
                "hash": "9a1b2c3d4e5f60718293a4b5c6d7e8f9.dir",
                "size": 212454603,
                "nfiles": 1912,
            },
        }
    ]


def test_data_block_is_compact_json_with_sorted_keys() -> None:
    body = render_comment(improving())
    raw = body[body.rfind(DATA_PREFIX) + len(DATA_PREFIX) : -len(" -->")]
    compact = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert raw == compact


def test_text_that_could_close_the_html_comment_is_escaped_and_survives() -> None:
    key = "a-->b--!>c<!--d---e>"
    evaluation = Evaluation(HEAD, BASE, old={"m.json": {key: 1}}, new={"m.json": {key: 2}})
    body = render_comment(evaluation)
    block = body[body.rfind(DATA_PREFIX) :]
    assert block.count("-->") == 1 and block.endswith(" -->")
    assert "--" not in block[len(DATA_PREFIX) : -len(" -->")]
    data = parse_data(body)
    assert data is not None and list(data["metrics"]["m.json"]) == [key]
    # The table cell cannot open a comment either: only the marker and the data block do.
    assert body.count("<!--") == 2
    assert "| `a-->b--!>c<!-\u200c-d---e>` |" in body


def test_markers_inside_the_log_tail_cannot_be_mistaken_for_ours() -> None:
    log = f'{MARKER}\n{DATA_PREFIX}{{"verdict": "passed"}} -->\n'
    body = render_comment(Evaluation(HEAD, BASE, log_tail=log))
    assert body.count(MARKER) == 1
    assert body.count(DATA_PREFIX) == 1
    data = parse_data(body)
    assert data is not None and data["verdict"] == "no_gates"


def test_log_fence_is_longer_than_any_backtick_run_in_the_log() -> None:
    body = render_comment(Evaluation(HEAD, BASE, log_tail="```\ninjected\n````\n"))
    assert "`````text\n```\ninjected\n````\n`````" in body


def test_non_finite_values_keep_the_data_block_valid_json() -> None:
    evaluation = Evaluation(
        HEAD, BASE, old={"m.json": {"x": 1.0}}, new={"m.json": {"x": float("inf")}}
    )
    data = parse_data(render_comment(evaluation))
    assert data is not None and data["metrics"]["m.json"]["x"]["new"] == "Infinity"


def test_notes_appear_under_the_verdict() -> None:
    body = render_comment(data_and_trend())
    assert "> evaluation waits for a maintainer's /evaluate on 9a1b2c3\n" in body


def test_trend_draws_at_most_the_last_twenty_baselines_and_the_head() -> None:
    body = render_comment(data_and_trend())
    chart = body[body.index("```mermaid") :]
    chart = chart[: chart.index("\n```\n")]
    labels = chart[chart.index("x-axis [") + 8 : chart.index("]")].split(", ")
    assert len(labels) == 21
    assert labels[0] == '"05c0ffe"' and labels[-1] == '"this PR"'


def test_overridden_failure_is_reported_and_concludes_success() -> None:
    evaluation = regressing()
    overridden = replace(evaluation, override="@alice: known flaky evaluation set")
    body = render_comment(overridden)
    assert "⚠️ **Quality gate failed, overridden** by @alice: known flaky evaluation set" in body
    assert conclusion(overridden) == "success"
    assert parse_data(body) is not None and parse_data(body)["verdict"] == "overridden"  # type: ignore[index]


def test_sizes_are_decimal_and_signed() -> None:
    assert human_size(12_400_000, signed=True) == "+12.4 MB"
    assert human_size(-999, signed=True) == "-999 B"
    assert human_size(0, signed=True) == "±0 B"
    assert human_size(1_234_567_890) == "1.2 GB"


# ---------------------------------------------------------------------------- the limit


def log_of(lines: int, width: int = 200) -> str:
    return "\n".join(f"{i:08d} " + "x" * width for i in range(lines))


def test_huge_log_is_cut_to_its_newest_lines_and_the_comment_fits() -> None:
    evaluation = replace(improving(), log_tail=log_of(100_000, 490))
    body = render_comment(evaluation)
    assert text_length(body) < COMMENT_LIMIT
    assert body.startswith(MARKER)
    assert "older log lines" in body
    assert "00099999 " in body  # the newest line is kept
    assert parse_data(body) is not None


def thousands_of_metrics(count: int) -> Evaluation:
    old: dict[str, dict[str, MetricValue]] = {"metrics.json": {}, "eval/per_class.json": {}}
    new: dict[str, dict[str, MetricValue]] = {"metrics.json": {}, "eval/per_class.json": {}}
    for index in range(count):
        key = f"class_{index:05d}.precision_at_k_with_a_long_descriptive_name"
        old["eval/per_class.json"][key] = 0.5
        new["eval/per_class.json"][key] = 0.5 + (index % 2) / 100
    old["metrics.json"]["accuracy"] = 0.9
    new["metrics.json"]["accuracy"] = 0.8
    changes = [
        DataChange(
            f"data/shard_{i:05d}", "added", None, Output(f"data/shard_{i:05d}", "a" * 32, i, 1)
        )
        for i in range(count)
    ]
    params = [ParamChange("params.yaml", f"grid.p{i}", i, i + 1) for i in range(count)]
    return Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        old=old,
        new=new,
        gates=evaluate_gates([Gate("accuracy", min=0.85)], old, new),
        data_changes=changes,
        param_changes=params,
        trend=baselines(20),
        log_tail=log_of(300),
        details_url="https://mlgate.example.com/runs/7",
    )


def test_thousands_of_metrics_keep_marker_failed_gates_and_capped_data_block() -> None:
    body = render_comment(thousands_of_metrics(5000))
    assert text_length(body) < COMMENT_LIMIT
    assert body.startswith(MARKER)
    assert "_Left out to stay under GitHub's 65,536-character comment limit:" in body
    assert "unchanged metrics" in body and "the trend" in body
    assert "[Full report](https://mlgate.example.com/runs/7)" in body
    # The failing gate's row sorts first, so it is what survives the cut.
    assert "| `metrics.json:accuracy` | 0.9 | 0.8 |" in body
    block = body[body.rfind(DATA_PREFIX) :]
    assert text_length(block) <= DATA_LIMIT
    data = parse_data(body)
    assert data is not None
    assert data["verdict"] == "failed"
    assert data["metrics"]["metrics.json"]["accuracy"]["gate"]["passed"] is False
    assert "unchanged metrics" in data["truncated"]


def test_comment_exactly_at_the_limit_is_kept_whole_and_one_more_character_is_cut() -> None:
    budget = COMMENT_LIMIT - 1

    def render(lines: list[str]) -> str:
        return render_comment(replace(improving(), log_tail="\n".join(lines)))

    # Fill the log with 400-character lines, then size a last line to land exactly on the
    # budget (log lines are clipped at 500 characters, so no single line can do it).
    lines = ["z" * 399]
    while True:
        longer = render([*lines, "z" * 399, "y"])
        if "Left out" in longer or text_length(longer) >= budget:
            break
        lines.append("z" * 399)
    last = 1 + budget - text_length(render([*lines, "y"]))
    exact = render([*lines, "y" * last])
    assert text_length(exact) == budget
    assert "Left out" not in exact
    over = render([*lines, "y" * (last + 1)])
    assert text_length(over) <= budget
    assert "older log lines" in over
    assert parse_data(over) is not None


def test_wide_characters_count_twice_against_the_limit() -> None:
    body = render_comment(replace(improving(), log_tail="😀" * 400 * 200))
    assert text_length(body) < COMMENT_LIMIT
    assert text_length(body) > len(body)


metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=300),
)
metric_files = st.dictionaries(
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(min_size=1, max_size=400), metric_values, max_size=120),
    max_size=4,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=metric_files,
    new=metric_files,
    log=st.text(max_size=2000),
    log_repeat=st.integers(min_value=0, max_value=200),
    notes=st.lists(st.text(max_size=3000), max_size=25),
    data_count=st.integers(min_value=0, max_value=600),
    url=st.one_of(st.none(), st.text(max_size=2000)),
)
def test_rendering_never_exceeds_the_limit(
    old: dict[str, dict[str, MetricValue]],
    new: dict[str, dict[str, MetricValue]],
    log: str,
    log_repeat: int,
    notes: list[str],
    data_count: int,
    url: str | None,
) -> None:
    gates = [Gate(key, min=0.5) for file in new.values() for key in list(file)[:30]]
    evaluation = Evaluation(
        head_sha=HEAD,
        base_sha=BASE,
        old=old,
        new=new,
        gates=evaluate_gates(gates, old, new),
        data_changes=[
            DataChange(f"d/{'p' * 150}{i}", "removed", Output("x", "b" * 32, i, i), None)
            for i in range(data_count)
        ],
        log_tail=log * log_repeat,
        notes=notes,
        details_url=url,
        trend=baselines(3),
    )
    body = render_comment(evaluation)
    assert text_length(body) < COMMENT_LIMIT
    assert body.startswith(MARKER)
    data = parse_data(body)
    assert data is not None and data["head"] == HEAD
    assert text_length(render_check_run(evaluation).summary) <= SUMMARY_LIMIT


# ---------------------------------------------------------------------------- check run


def test_check_run_summary_has_the_table_but_no_marker_or_data_block() -> None:
    summary = render_check_run(regressing()).summary
    assert "| Metric | Base | Head | Change | Gate |" in summary
    assert MARKER not in summary and DATA_PREFIX not in summary


def test_failed_gates_are_annotated_on_their_metrics_file_lines() -> None:
    output = render_check_run(regressing())
    assert [(a.path, a.start_line, a.title) for a in output.annotations] == [
        ("metrics.json", 2, "Quality gate failed: accuracy"),
        ("metrics.json", 3, "Quality gate failed: loss"),
    ]  # recall's file is absent at head: nothing to annotate
    assert output.annotations[0].as_dict() == {
        "path": "metrics.json",
        "start_line": 2,
        "end_line": 2,
        "annotation_level": "failure",
        "message": "0.861 < min 0.87; drop 0.041 > max_drop 0.01",
        "title": "Quality gate failed: accuracy",
    }


def test_annotations_go_out_fifty_per_request() -> None:
    old = {"m.json": {f"k{i}": 1.0 for i in range(120)}}
    new = {"m.json": {f"k{i}": 0.0 for i in range(120)}}
    gates = [Gate(f"k{i}", min=0.5) for i in range(120)]
    source = "{\n" + ",\n".join(f'"k{i}": 0.0' for i in range(120)) + "\n}"
    evaluation = Evaluation(
        HEAD,
        BASE,
        old=old,
        new=new,
        gates=evaluate_gates(gates, old, new),
        sources={"m.json": source},
    )
    output = render_check_run(evaluation)
    payloads = output.outputs()
    assert [len(p["annotations"]) for p in payloads] == [50, 50, 20]
    assert all(p["title"] == output.title and p["summary"] == output.summary for p in payloads)
    assert payloads[2]["annotations"][-1]["start_line"] == 121
    assert ANNOTATIONS_PER_REQUEST == 50
    assert annotation_batches([]) == []


def test_passing_check_run_has_no_annotations_and_a_single_output() -> None:
    output = render_check_run(improving())
    assert (output.conclusion, output.title) == (
        "success",
        "Quality gate passed: 2 of 2 gates hold",
    )
    assert output.outputs() == [{"title": output.title, "summary": output.summary}]


def test_skipped_check_run_says_why() -> None:
    output = render_check_run(irrelevant())
    assert output.conclusion == "skipped"
    assert output.title.startswith("Skipped: no changed file matches `triggers`")


def test_huge_check_run_summary_fits() -> None:
    summary = render_check_run(thousands_of_metrics(5000)).summary
    assert text_length(summary) <= SUMMARY_LIMIT
    assert "65,535-character summary limit" in summary


def test_noise_shows_mean_spread_and_runs() -> None:
    body = render_comment(data_and_trend())
    assert "0.885 ± 0.004 (n=3)" in body
    assert "within noise (±0.004)" in body
    assert isinstance(aggregate([{"a": 1.0}])["a"], Stat)
