"""Metric history as line charts in SVG, drawn on the server: no script, every text escaped."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from bot.core.metrics import MetricValue

Metrics = Mapping[str, Mapping[str, MetricValue]]

# A page of charts stays readable (and cheap to render) with this many; the rest are counted.
MAX_CHARTS = 12
# The longest series drawn: 20 default-branch commits, or the newest uploads of an environment.
MAX_POINTS = 60
WIDTH, HEIGHT = 460, 170
# The plot area inside the picture: room for the title above, y labels left, x labels below.
LEFT, RIGHT, TOP, BOTTOM = 60, 14, 30, 30
TITLE_CHARS = 56
LABEL_CHARS = 20
SERIES_COLOUR = "#0969da"
GRID_COLOUR = "#d0d7de"
TEXT_COLOUR = "#57606a"


@dataclass(frozen=True)
class Series:
    """One metric over a run of x positions; None where a commit or upload lacks it."""

    name: str
    values: tuple[float | None, ...]

    @property
    def points(self) -> int:
        return sum(v is not None for v in self.values)


def metric_series(rows: Sequence[Metrics]) -> list[Series]:
    """Every numeric metric of `rows` (oldest first) as a series, in order of first appearance.

    A metric is named by its key when all rows hold one file, else `file: key`; booleans,
    strings, NaN and infinities are no points, and a metric with no point is no series.
    """
    files = {path for row in rows for path in row}
    names: dict[tuple[str, str], str] = {}
    for row in rows:
        for path, values in row.items():
            for metric in values:
                names.setdefault((path, metric), metric if len(files) == 1 else f"{path}: {metric}")
    found = []
    for (path, metric), name in names.items():
        points = tuple(_number(row.get(path, {}).get(metric)) for row in rows)
        series = Series(name, points)
        if series.points:
            found.append(series)
    return found


def _number(value: MetricValue | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def format_number(value: float) -> str:
    """Four significant digits, as the charts label values."""
    return f"{value:.4g}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_chart(series: Series, labels: Sequence[str]) -> str:
    """`series` over `labels` (one per value: a short sha, a time) as an `<svg>` element.

    x positions are evenly spaced (commits are steps, not times); y spans the series' own
    range, labelled at its minimum, middle and maximum. Each point has a `<title>` (label and
    value) that a browser shows on hover.
    """
    if len(labels) != len(series.values):
        raise ValueError(f"{len(labels)} labels for {len(series.values)} values")
    values, labels = series.values[-MAX_POINTS:], list(labels)[-MAX_POINTS:]
    drawn = [(i, v) for i, v in enumerate(values) if v is not None]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low = min((v for _, v in drawn), default=0.0)
    high = max((v for _, v in drawn), default=0.0)
    span = high - low
    # A flat series sits in the middle; otherwise 8% headroom keeps points off the edges.
    pad = span * 0.08 if span else (abs(low) * 0.05 or 1.0)
    bottom, top = low - pad, high + pad

    def x(index: int) -> float:
        if len(values) == 1:
            return LEFT + plot_w / 2
        return LEFT + plot_w * index / (len(values) - 1)

    def y(value: float) -> float:
        return TOP + plot_h * (top - value) / (top - bottom)

    name = escape(series.name)
    last = format_number(drawn[-1][1]) if drawn else "none"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{name}: {len(drawn)} points, last {last}" data-metric="{name}" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="{TEXT_COLOUR}">',
        f"<title>{name}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#1f2328">'
        f"{escape(_clip(series.name, TITLE_CHARS))}</text>",
    ]
    ticks = sorted({low, (low + high) / 2, high}) if drawn else []
    for tick in ticks:
        at = _fmt(y(tick))
        parts.append(
            f'<line x1="{LEFT}" y1="{at}" x2="{WIDTH - RIGHT}" y2="{at}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{at}" text-anchor="end" dominant-baseline="middle">'
            f"{escape(format_number(tick))}</text>"
        )
    for index, anchor in _x_label_positions(len(values)):
        parts.append(
            f'<text x="{_fmt(x(index))}" y="{HEIGHT - 10}" text-anchor="{anchor}">'
            f"{escape(_clip(labels[index], LABEL_CHARS))}</text>"
        )
    if len(drawn) > 1:
        points = " ".join(f"{_fmt(x(i))},{_fmt(y(v))}" for i, v in drawn)
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" '
            f'stroke="{SERIES_COLOUR}" stroke-width="2" stroke-linejoin="round"/>'
        )
    for i, v in drawn:
        parts.append(
            f'<circle class="point" cx="{_fmt(x(i))}" cy="{_fmt(y(v))}" r="3" '
            f'fill="{SERIES_COLOUR}"><title>{escape(labels[i])}: {format_number(v)}</title>'
            "</circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _x_label_positions(count: int) -> list[tuple[int, str]]:
    """The first, middle and last x positions get a label (fewer when there are fewer)."""
    if count == 0:
        return []
    if count == 1:
        return [(0, "middle")]
    chosen = [(0, "start"), (count - 1, "end")]
    if count >= 5:
        chosen.insert(1, ((count - 1) // 2, "middle"))
    return chosen


def _fmt(coordinate: float) -> str:
    return f"{coordinate:.1f}"
