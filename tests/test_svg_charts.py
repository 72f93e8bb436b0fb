"""The dashboard's SVG line charts: which metrics become series, and where points land."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from bot.core.svg_charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    MAX_POINTS,
    RIGHT,
    TOP,
    WIDTH,
    Metrics,
    Series,
    line_chart,
    metric_series,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart as XML: it must be well-formed to be inlined in any page."""
    return ET.fromstring(svg)


def points(svg: str) -> list[tuple[float, float]]:
    line = parse(svg).find(f"{SVG}polyline")
    assert line is not None
    pairs = [p.split(",") for p in line.attrib["points"].split()]
    return [(float(x), float(y)) for x, y in pairs]


def circles(svg: str) -> list[tuple[float, float, str]]:
    found = []
    for circle in parse(svg).iter(f"{SVG}circle"):
        title = circle.find(f"{SVG}title")
        assert title is not None and title.text is not None
        found.append((float(circle.attrib["cx"]), float(circle.attrib["cy"]), title.text))
    return found


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in parse(svg).iter(f"{SVG}text")]


def test_one_file_names_metrics_by_key_and_skips_what_is_not_a_number() -> None:
    rows: list[Metrics] = [
        {"metrics.json": {"accuracy": 0.8, "model": "xgb", "ok": True}},
        {"metrics.json": {"accuracy": 0.9, "loss": float("nan")}},
        {"metrics.json": {"accuracy": 1, "loss": 0.2}},
    ]
    assert metric_series(rows) == [
        Series("accuracy", (0.8, 0.9, 1.0)),
        # NaN is no point; a commit without the metric is a gap.
        Series("loss", (None, None, 0.2)),
    ]


def test_several_files_name_metrics_by_file_and_key() -> None:
    rows = [{"a.json": {"f1": 0.5}, "b.json": {"f1": 0.6, "inf": math.inf}}]
    assert metric_series(rows) == [Series("a.json: f1", (0.5,)), Series("b.json: f1", (0.6,))]


def test_no_rows_no_series() -> None:
    assert metric_series([]) == []


def test_points_are_evenly_spaced_and_higher_values_are_higher_up() -> None:
    svg = line_chart(Series("accuracy", (0.80, 0.90, 0.85)), ["a", "b", "c"])
    drawn = points(svg)
    assert [x for x, _ in drawn] == [LEFT, LEFT + (WIDTH - LEFT - RIGHT) / 2, WIDTH - RIGHT]
    (_, y80), (_, y90), (_, y85) = drawn
    assert y90 < y85 < y80  # SVG's y grows downwards
    # 8% of the range above the highest and below the lowest point.
    plot = HEIGHT - TOP - BOTTOM
    assert y90 == pytest.approx(TOP + plot * 0.08 / 1.16, abs=0.06)
    assert y80 == pytest.approx(TOP + plot * 1.08 / 1.16, abs=0.06)
    assert [c[2] for c in circles(svg)] == ["a: 0.8", "b: 0.9", "c: 0.85"]
    # The y axis is labelled at the minimum, the middle and the maximum.
    assert {"0.8", "0.85", "0.9"} <= set(texts(svg))


def test_a_gap_is_skipped_but_keeps_its_x_position() -> None:
    svg = line_chart(Series("loss", (0.3, None, 0.1)), ["a", "b", "c"])
    assert [x for x, _ in points(svg)] == [LEFT, WIDTH - RIGHT]
    assert len(circles(svg)) == 2


def test_a_single_point_is_a_dot_in_the_middle_without_a_line() -> None:
    svg = line_chart(Series("accuracy", (0.9,)), ["abc1234"])
    assert parse(svg).find(f"{SVG}polyline") is None
    [(x, y, title)] = circles(svg)
    assert (x, title) == (LEFT + (WIDTH - LEFT - RIGHT) / 2, "abc1234: 0.9")
    assert y == pytest.approx(TOP + (HEIGHT - TOP - BOTTOM) / 2, abs=0.06)


def test_a_flat_series_sits_in_the_middle() -> None:
    svg = line_chart(Series("accuracy", (0.5, 0.5, 0.5, 0.5)), list("abcd"))
    middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
    assert all(y == pytest.approx(middle, abs=0.06) for _, y in points(svg))


def test_only_the_newest_points_are_drawn() -> None:
    values = tuple(float(i) for i in range(MAX_POINTS + 5))
    labels = [f"c{i}" for i in range(MAX_POINTS + 5)]
    svg = line_chart(Series("step", values), labels)
    assert len(points(svg)) == MAX_POINTS
    assert circles(svg)[0][2] == "c5: 5"
    assert circles(svg)[-1][2] == f"c{MAX_POINTS + 4}: {MAX_POINTS + 4}"


def test_names_and_labels_from_a_repository_are_escaped() -> None:
    name = '<script>alert("x")</script> & "acc"'
    svg = line_chart(Series(name, (1.0, 2.0)), ["<b>", "x\"'"])
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.attrib["data-metric"] == name
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == name
    assert [c[2] for c in circles(svg)] == ["<b>: 1", "x\"': 2"]


def test_labels_must_match_the_values() -> None:
    with pytest.raises(ValueError, match="2 labels for 3 values"):
        line_chart(Series("x", (1.0, 2.0, 3.0)), ["a", "b"])
