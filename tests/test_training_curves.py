"""Training curves: dvc.yaml `plots:` forms, TSV/CSV/JSON series, downsampling, golden charts."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.training_curves import (
    FILE_LIMIT,
    Curve,
    PlotSource,
    Series,
    Table,
    curves_for,
    default_fields,
    downsample,
    expand_directories,
    plot_sources,
    read_series,
    read_table,
    render_curves,
)

GOLDEN = Path(__file__).parent / "golden" / "curves"
BASE, HEAD = "0a1b2c3", "4d5e6f7"


def assert_golden(name: str, text: str) -> None:
    """Compare byte for byte with tests/golden/curves/<name>; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text.encode() == path.read_bytes(), f"{name} differs (UPDATE_GOLDEN=1 to accept)"


def dvclive_tsv(name: str, values: list[float], first_step: int = 0) -> bytes:
    """A file as dvclive writes `dvclive/plots/metrics/<name>.tsv`."""
    rows = "".join(
        f"{1_700_000_000_000 + 1000 * i}\t{first_step + i}\t{value}\n"
        for i, value in enumerate(values)
    )
    return f"timestamp\tstep\t{name}\n{rows}".encode()


def table(content: bytes, path: str) -> Table:
    read = read_table(content, path)
    assert isinstance(read, Table), read
    return read


def series(content: bytes, path: str, x: str | None, y: str) -> Series:
    read = read_series(table(content, path), x, y)
    assert isinstance(read, Series), read
    return read


# --- dvc.yaml --------------------------------------------------------------------------------


def test_dvclive_folder_with_x_step() -> None:
    sources, problems = plot_sources(b"plots:\n  - dvclive/plots/metrics:\n      x: step\n")
    assert sources == [PlotSource("dvclive/plots/metrics", x="step")]
    assert problems == []


def test_every_top_level_form() -> None:
    text = """\
plots:
  - logs.csv
  - eval/prc.json:
      x: recall
      y: precision
      title: Precision-Recall
  - Loss:
      template: smooth
      x: step
      y:
        train/loss.tsv: loss
        eval/loss.tsv: [loss, val_loss]
  - Confusion:
      template: confusion
      x: actual
      y:
        eval/cm.json: predicted
  - roc.csv:
      x: {roc.csv: fpr}
      y: [tpr]
  - images/importance.png
  - ${name}.tsv
"""
    sources, problems = plot_sources(text, "models/dvc.yaml")
    assert problems == []
    assert sources == [
        PlotSource("models/logs.csv"),
        PlotSource("models/eval/prc.json", "recall", ("precision",), "Precision-Recall"),
        PlotSource("models/train/loss.tsv", "step", ("loss",), "Loss", "smooth"),
        PlotSource("models/eval/loss.tsv", "step", ("loss", "val_loss"), "Loss", "smooth"),
        PlotSource("models/eval/cm.json", "actual", ("predicted",), "Confusion", "confusion"),
        PlotSource("models/roc.csv", "fpr", ("tpr",)),
        PlotSource("models/images/importance.png"),
    ]


def test_older_mapping_form_and_stage_plots_relative_to_wdir() -> None:
    text = """\
plots:
  acc.tsv: {x: epoch}
stages:
  train:
    wdir: training
    cmd: python train.py
    plots:
      - curves/loss.csv:
          cache: false
          x: epoch
      - curves/lr.csv
  sweep:
    foreach: [a, b]
    do:
      cmd: echo
      plots: [sweep/out.tsv]
  plain:
    cmd: echo
"""
    sources, problems = plot_sources(text)
    assert problems == []
    assert sources == [
        PlotSource("acc.tsv", "epoch"),
        PlotSource("training/curves/loss.csv", "epoch"),
        PlotSource("training/curves/lr.csv"),
        PlotSource("sweep/out.tsv"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"plots: {a: 1", "`dvc.yaml` is not valid YAML at line 1"),
        (b"\xff\xfe", "`dvc.yaml` is not UTF-8 text"),
        (b"- a\n- b\n", "`dvc.yaml` is not a mapping at the top level"),
        (b"plots: 3\n", "`dvc.yaml`: `plots` is not a list of plots"),
        (b"plots:\n  - [a, b]\n", "`dvc.yaml`: `plots[0]` is neither a path nor a one-key mapping"),
        (b"plots:\n  - a.tsv: 3\n", "`dvc.yaml`: `plots.a.tsv` properties are not a mapping"),
        (
            b"plots:\n  - a.tsv: {y: {b: 1}}\n",
            "`dvc.yaml`: `plots.a.tsv.y.b` is not a field name or a list of them",
        ),
        (b"plots:\n  - a.tsv: {y: 3}\n", "`dvc.yaml`: `plots.a.tsv.y` is not a field name"),
        (b"a: 0x_\n", "`dvc.yaml` is not valid YAML"),
        (b"[" * 5000, "`dvc.yaml`"),
    ],
)
def test_a_malformed_dvc_yaml_gives_one_line_reasons(text: bytes, problem: str) -> None:
    sources, problems = plot_sources(text)
    assert sources == []
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems
    assert "\n" not in problems[0]


def test_a_dvc_yaml_over_the_limit_is_not_read() -> None:
    assert plot_sources(b"#" * (FILE_LIMIT + 1)) == ([], ["`dvc.yaml` is over the 10 MiB limit"])


def test_no_plots_is_nothing() -> None:
    assert plot_sources(b"") == ([], [])
    assert plot_sources(b"stages:\n  train: {cmd: x}\n") == ([], [])


def test_directories_expand_to_their_data_files_and_non_curves_are_left_out() -> None:
    sources = [
        PlotSource("dvclive/plots/metrics", x="step"),
        PlotSource("eval/cm.json", "actual", ("predicted",), template="confusion"),
        PlotSource("importance.png"),
        PlotSource("losses.yaml"),
        PlotSource("logs.csv"),
        PlotSource("logs.csv"),  # declared twice: drawn once
        PlotSource("custom.tsv", template="linear"),
    ]
    paths = [
        "dvclive/plots/metrics/train/loss.tsv",
        "dvclive/plots/metrics/acc.tsv",
        "dvclive/plots/metrics/notes.txt",
        "dvclive/plots/metricsX/other.tsv",
        "dvclive/metrics.json",
        "logs.csv",
    ]
    assert expand_directories(sources, paths) == [
        PlotSource("dvclive/plots/metrics/acc.tsv", x="step"),
        PlotSource("dvclive/plots/metrics/train/loss.tsv", x="step"),
        PlotSource("logs.csv"),
        PlotSource("custom.tsv", template="linear"),
    ]


# --- data files ------------------------------------------------------------------------------


def test_dvclive_tsv_is_read_over_its_step_column() -> None:
    read = series(dvclive_tsv("loss", [0.9, 0.5, 0.25], first_step=1), "loss.tsv", None, "loss")
    assert read.points == ((1.0, 0.9), (2.0, 0.5), (3.0, 0.25))
    assert default_fields(table(dvclive_tsv("loss", [1.0]), "loss.tsv"), None) == ("loss",)


def test_csv_over_an_x_field_or_the_row_index() -> None:
    content = b"epoch,loss,accuracy\n1,0.19,0.81\n2,0.11,0.89\n3,0.07,0.93\n"
    assert series(content, "logs.csv", "epoch", "accuracy").points == (
        (1.0, 0.81),
        (2.0, 0.89),
        (3.0, 0.93),
    )
    assert series(content, "logs.csv", None, "loss").points == (
        (0.0, 0.19),
        (1.0, 0.11),
        (2.0, 0.07),
    )
    assert default_fields(table(content, "logs.csv"), "epoch") == ("accuracy",)


def test_json_list_of_objects_and_object_holding_one() -> None:
    rows = [{"step": 0, "loss": 1.5}, {"step": 1, "loss": 0.5}]
    assert series(json.dumps(rows).encode(), "l.json", None, "loss").points == (
        (0.0, 1.5),
        (1.0, 0.5),
    )
    wrapped = json.dumps({"meta": "x", "train": rows}).encode()
    assert series(wrapped, "l.json", None, "loss").points == ((0.0, 1.5), (1.0, 0.5))


def test_a_step_written_twice_keeps_its_last_value_and_steps_are_sorted() -> None:
    content = b"step\tloss\n0\t1\n1\t0.8\n2\t0.7\n1\t0.75\n2\t0.6\n"
    assert series(content, "x.tsv", None, "loss").points == ((0.0, 1.0), (1.0, 0.75), (2.0, 0.6))


def test_values_that_are_not_finite_or_absent_are_left_out_and_counted() -> None:
    content = json.dumps([{"loss": 1}, {"loss": None}, {}, {"loss": 0.5}]).encode()
    read = series(content, "x.json", None, "loss")
    assert read.points == ((0.0, 1.0), (3.0, 0.5))
    assert read.dropped == 2
    nan = series(b"step,loss\n0,nan\n1,inf\n2,0.3\n", "x.csv", None, "loss")
    assert nan.points == ((2.0, 0.3),)
    assert nan.dropped == 2


@pytest.mark.parametrize(
    ("content", "path", "reason"),
    [
        (b"step\tloss\n0\t1\n1\n", "x.tsv", "row 2 has 1 fields, the header 2"),
        (b"a,a\n1,2\n", "x.csv", "a field name appears twice in the header"),
        (b"", "x.csv", "empty"),
        (b"\xff\x00", "x.tsv", "not UTF-8 text"),
        (b"[{]", "x.json", "not valid JSON (line 1)"),
        (b'{"a": 1}', "x.json", "not a list of objects"),
        (b"[1, 2]", "x.json", "not a list of objects"),
        (b"[" * 100_000, "x.json", "JSON nested too deeply"),
        (b'a,"b\n1,2', "x.csv", "not CSV: unexpected end of data"),
        (b"step\tloss\n", "x.tsv", "no rows under the header"),
        (b"[]", "x.json", "no rows"),
        (b'{"a": []}', "x.json", "not a list of objects"),
    ],
)
def test_malformed_files_give_a_one_line_reason(content: bytes, path: str, reason: str) -> None:
    read = read_table(content, path)
    assert isinstance(read, str)
    assert read.startswith(reason), read


def test_a_file_over_the_limit_is_not_read() -> None:
    assert read_table(b"x" * (FILE_LIMIT + 1), "x.tsv") == "over the 10 MiB limit"


@pytest.mark.parametrize(
    ("content", "x", "y", "reason"),
    [
        (b"step,loss\n0,abc\n", None, "loss", "row 1: `abc` in `loss` is not a number"),
        (b"step,loss\n0,true\n", None, "loss", "row 1: `true` in `loss` is not a number"),
        (b"step,loss\nfirst,1\n", None, "loss", "row 1: `first` in `step` is not a number"),
        (b"step,loss\n0,1\n", None, "acc", "has no field `acc`"),
        (b"step,loss\n0,1\n", "epoch", "loss", "has no field `epoch`"),
    ],
)
def test_unreadable_series_give_a_one_line_reason(
    content: bytes, x: str | None, y: str, reason: str
) -> None:
    assert read_series(table(content, "x.csv"), x, y) == reason


def test_json_booleans_are_not_numbers() -> None:
    read = read_series(table(b'[{"loss": true}]', "x.json"), None, "loss")
    assert read == "row 1: `True` in `loss` is not a number"


# --- downsampling ----------------------------------------------------------------------------


def test_downsampling_keeps_first_last_and_at_most_the_limit() -> None:
    points = [(float(i), math.sin(i / 50)) for i in range(1000)]
    kept = downsample(points, 100)
    assert len(kept) == 100
    assert kept[0] == points[0]
    assert kept[-1] == points[-1]
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)
    assert set(kept) <= set(points)
    assert downsample(points, 100) == kept  # deterministic


def test_downsampling_keeps_a_spike_that_an_even_stride_would_miss() -> None:
    points = [(float(i), 1.0) for i in range(1000)]
    points[503] = (503.0, 50.0)
    kept = downsample(points, 100)
    assert (503.0, 50.0) in kept
    assert (503.0, 50.0) not in points[::10]


def test_short_series_are_not_downsampled() -> None:
    points = [(float(i), float(i)) for i in range(100)]
    assert downsample(points, 100) == points
    assert downsample(points[:3], 2) == [points[0], points[2]]
    assert downsample([], 100) == []


# --- charts ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)")


def mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", text, re.S)


def check_mermaid(text: str, points: int) -> None:
    """Every chart has numbers Mermaid's xychart lexer reads, and lines as long as the axis."""
    for block in mermaid_blocks(text):
        labels = re.search(r'x-axis "[^"]*" \[(.*)\]', block)
        assert labels is not None
        count = len(labels.group(1).split(", "))
        assert count <= points
        low, high = re.search(r"y-axis \"[^\"]*\" (\S+) --> (\S+)", block).groups()  # type: ignore[union-attr]
        assert _NUMBER.fullmatch(low) and _NUMBER.fullmatch(high)
        for line in re.findall(r'line "(?:base|head)" \[(.*)\]', block):
            values = line.split(", ")
            assert len(values) == count
            assert all(_NUMBER.fullmatch(v) for v in values), values
            assert all(float(low) <= float(v) <= float(high) for v in values)


def dvclive_curves(base: dict[str, list[float]], head: dict[str, list[float]]) -> list[Curve]:
    dvc_yaml = (
        b"metrics:\n  - dvclive/metrics.json\nplots:\n  - dvclive/plots/metrics:\n      x: step\n"
    )
    files = {
        **{f"dvclive/plots/metrics/{k}.tsv": v for k, v in base.items()},
        **{f"dvclive/plots/metrics/{k}.tsv": v for k, v in head.items()},
    }
    sources, problems = plot_sources(dvc_yaml)
    assert problems == []
    curves: list[Curve] = []
    for source in expand_directories(sources, files):
        name = source.file.rsplit("/", 1)[1].removesuffix(".tsv")
        curves += curves_for(
            source,
            dvclive_tsv(name, base[name]) if name in base else None,
            dvclive_tsv(name, head[name]) if name in head else None,
        )
    return curves


def test_golden_tsv_dvclive_base_and_head() -> None:
    curves = dvclive_curves(
        base={"loss": [0.92, 0.61, 0.45, 0.38, 0.35], "acc": [0.6, 0.71, 0.78, 0.8, 0.81]},
        head={
            "loss": [0.9, 0.55, 0.4, 0.31, 0.27, 0.25],
            "acc": [0.62, 0.74, 0.81, 0.84, 0.86, 0.87],
        },
    )
    text = render_curves(curves, BASE, HEAD)
    check_mermaid(text, 100)
    assert_golden("tsv.md", text)


def test_golden_csv_with_an_x_field_and_two_y_fields() -> None:
    sources, _ = plot_sources(b"plots:\n  - logs.csv:\n      x: epoch\n      y: [loss, accuracy]\n")
    base = b"epoch,loss,accuracy\n1,0.3,0.7\n2,0.2,0.8\n3,0.15,0.85\n"
    head = b"epoch,loss,accuracy\n1,0.25,0.75\n2,0.15,0.86\n3,0.1,0.9\n4,0.08,0.91\n"
    curves = curves_for(expand_directories(sources, ["logs.csv"])[0], base, head)
    assert [c.y for c in curves] == ["loss", "accuracy"]
    text = render_curves(curves, BASE, HEAD)
    check_mermaid(text, 100)
    assert_golden("csv.md", text)


def test_golden_json_plot_id_new_at_head() -> None:
    sources, _ = plot_sources(
        b"plots:\n  - Validation loss:\n      x: epoch\n"
        b"      y:\n        eval/history.json: val_loss\n"
    )
    head = json.dumps(
        {"history": [{"epoch": e, "val_loss": round(1 / (e + 1), 4)} for e in range(8)]}
    ).encode()
    curves = curves_for(sources[0], None, head)  # the plot is new: no base line
    text = render_curves(curves, BASE, HEAD)
    check_mermaid(text, 100)
    assert 'line "base"' not in text
    assert '"plotColorPalette": "#1f6feb"' in text
    assert_golden("json.md", text)


def test_golden_downsampled_1000_steps() -> None:
    base = [round(2 * math.exp(-i / 200) + 0.05 * math.sin(i / 7), 6) for i in range(1000)]
    head = [round(1.8 * math.exp(-i / 180) + 0.04 * math.sin(i / 5), 6) for i in range(1000)]
    head[640] = 1.5  # a loss spike: largest-triangle buckets keep it
    curves = dvclive_curves(base={"loss": base}, head={"loss": head})
    text = render_curves(curves, BASE, HEAD)
    check_mermaid(text, 100)
    block = mermaid_blocks(text)[0]
    assert '"0"' in block and '"999"' in block
    assert "1.5" in block.split('line "head"')[1]
    assert "- 1000 steps shown as 100\n" in text
    assert_golden("downsampled.md", text)


def test_at_most_four_charts_with_a_note_naming_the_others() -> None:
    values = {f"m{i}": [1.0, 0.5] for i in range(6)}
    text = render_curves(dvclive_curves(values, values), BASE, HEAD)
    assert len(mermaid_blocks(text)) == 4
    assert "<summary>Training curves (4 plots)</summary>" in text
    assert (
        "4 of 6 plots shown (at most 4); not shown: `dvclive/plots/metrics/m4.tsv` `m4`,"
        " `dvclive/plots/metrics/m5.tsv` `m5`\n"
    ) in text


def test_a_shorter_series_is_held_flat_and_said_so() -> None:
    curves = dvclive_curves(base={"loss": [1, 0.5, 0.4, 0.3]}, head={"loss": [0.9, 0.45]})
    text = render_curves(curves, BASE, HEAD)
    assert 'line "head" [0.9, 0.45, 0.45, 0.45]' in text
    assert "- head has steps 0–1 only; its line is held flat beyond them\n" in text


def test_steps_of_base_and_head_are_aligned_by_interpolation() -> None:
    base = Series(((0.0, 1.0), (2.0, 0.5), (4.0, 0.1)))
    head = Series(((0.0, 0.8), (1.0, 0.6), (4.0, 0.2)))
    text = render_curves([Curve("x.tsv", "loss", None, base, head)], BASE, HEAD)
    assert 'x-axis "step" ["0", "1", "2", "4"]' in text
    assert 'line "base" [1, 0.75, 0.5, 0.1]' in text
    assert 'line "head" [0.8, 0.6, 0.466667, 0.2]' in text


def test_unreadable_files_are_listed_with_their_reason_and_never_raise() -> None:
    source = PlotSource("dvclive/plots/metrics/loss.tsv", x="step")
    good = dvclive_tsv("loss", [1.0, 0.5])
    curves = curves_for(source, b"timestamp\tstep\tloss\n1\t0\n", good)
    text = render_curves(curves, BASE, HEAD)
    assert len(mermaid_blocks(text)) == 1
    assert (
        "Plots that could not be read:\n\n"
        "- `dvclive/plots/metrics/loss.tsv` at base: row 1 has 2 fields, the header 3\n"
    ) in text
    broken = curves_for(source, None, b"\xff")
    assert render_curves(broken, BASE, HEAD) == (
        "<details><summary>Training curves (0 plots)</summary>\n\n"
        "Plots that could not be read:\n\n"
        "- `dvclive/plots/metrics/loss.tsv` at head: not UTF-8 text\n"
        "\n</details>\n"
    )


def test_a_plot_absent_at_both_sides_shows_nothing() -> None:
    assert curves_for(PlotSource("gone.tsv"), None, None) == []
    assert render_curves([], BASE, HEAD) == ""


def test_repository_text_stays_in_code_spans_and_out_of_mermaid_syntax() -> None:
    hostile = 'x"] \n```\n@admin <img src=x>'
    content = ('step,"' + hostile.replace('"', '""') + '"\n0,1\n1,2\n').encode()
    assert table(content, "a.csv").fields == ("step", hostile)
    source = PlotSource("a`b.csv", title='T" --> 1')
    text = render_curves(curves_for(source, None, content), BASE, HEAD)
    block = mermaid_blocks(text)[0]
    assert '    title "T_ --_ 1"\n' in block
    assert '    y-axis "x__ ______admin _img src_x_" 0.95 --> 2.05\n' in block
    assert text.count("```mermaid") == 1
    assert text.count("\n```\n") == 1  # the chart's own fence closes it, nothing from the file
    heading = text.splitlines()[2]
    assert heading == (
        '**`T" --> 1` (``a`b.csv`` ````x"] ``` @admin <img src=x>````)** — blue: head `4d5e6f7`'
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["x.tsv", "x.csv", "x.json"]))
def test_any_bytes_give_a_chart_or_a_reason_never_an_exception(content: bytes, path: str) -> None:
    curves = curves_for(PlotSource(path), content, content)
    render_curves(curves, BASE, HEAD)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_any_dvc_yaml_structure_gives_sources_or_reasons(data: object) -> None:
    text = json.dumps({"plots": data, "stages": {"s": {"plots": data}}})
    sources, problems = plot_sources(text)
    assert all("\n" not in p for p in problems)
    expand_directories(sources, ["a/b.tsv"])
