"""Training curves: dvc.yaml `plots:`, dvclive TSV/CSV/JSON series, base vs head in Mermaid."""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from bot.core.dvc import load_yaml
from bot.core.markdown_escape import code_span
from bot.errors import FileLimitExceeded

MAX_POINTS = 100  # per chart: Mermaid draws every point it is given, and the comment is finite
MAX_CHARTS = 4
# Files from a repository are read under the untrusted-file limit (ARCHITECTURE.md).
FILE_LIMIT = 10 * 1024 * 1024
_PROBLEMS_SHOWN = 10
_NAMES_SHOWN = 10
DATA_EXTENSIONS = (".tsv", ".csv", ".json")
# DVC's built-in templates that draw a line over steps; the others (confusion, scatter, bar)
# are not curves.
LINE_TEMPLATES = frozenset({"linear", "simple", "smooth"})
# Colours of the two lines: base grey, head blue; Mermaid's xychart has no legend on GitHub,
# so the line under each chart names them.
BASE_COLOUR, HEAD_COLOUR = "#9e9e9e", "#1f6feb"

Point = tuple[float, float]


@dataclass(frozen=True)
class PlotSource:
    """A plot from dvc.yaml: a data file (or a directory of them, as dvclive writes).

    `y` are the fields to draw, none meaning the last field that is not `x`; without `x`
    the step is the `step` field, else the row index.
    """

    file: str
    x: str | None = None
    y: tuple[str, ...] = ()
    title: str | None = None
    template: str | None = None


# ---------------------------------------------------------------------------- dvc.yaml


def _join(folder: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(folder, path)).lstrip("/")


def _texts(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


class _Reader:
    """Collects plot sources and one-line problems from the parsed dvc.yaml."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sources: list[PlotSource] = []
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{code_span(self.path)}: {code_span(where)} {what}")

    def entries(self, plots: Any, where: str) -> list[tuple[str, Any]]:
        """`plots:` as (id or path, properties) pairs: a list of paths and one-key mappings,
        or (older DVC) one mapping."""
        if isinstance(plots, Mapping):
            return [(str(key), value) for key, value in plots.items()]
        if not isinstance(plots, list):
            self.problem(where, "is not a list of plots")
            return []
        pairs: list[tuple[str, Any]] = []
        for index, entry in enumerate(plots):
            if isinstance(entry, str):
                pairs.append((entry, None))
            elif isinstance(entry, Mapping) and len(entry) == 1:
                key, value = next(iter(entry.items()))
                pairs.append((str(key), value))
            else:
                self.problem(f"{where}[{index}]", "is neither a path nor a one-key mapping")
        return pairs

    def add(self, name: str, props: Any, folder: str, where: str) -> None:
        if "${" in name:
            return  # templated from `vars` or `foreach`: unknown without the params
        if props is None or props is True or props is False:
            props = {}
        if not isinstance(props, Mapping):
            self.problem(where, "properties are not a mapping")
            return
        template = props.get("template")
        title = props.get("title")
        x, y = props.get("x"), props.get("y")
        common = {
            "template": template if isinstance(template, str) else None,
            "title": title if isinstance(title, str) else None,
        }
        if isinstance(y, Mapping):
            # `- Loss: {y: {train.tsv: loss, test.tsv: [loss, acc]}, x: step}`: an id, files in y.
            for file, fields in y.items():
                names = _texts(fields)
                if names is None:
                    self.problem(f"{where}.y.{file}", "is not a field name or a list of them")
                    continue
                x_field = x.get(file) if isinstance(x, Mapping) else x
                self.sources.append(
                    PlotSource(
                        _join(folder, str(file)),
                        x_field if isinstance(x_field, str) else None,
                        names,
                        common["title"] or name,
                        common["template"],
                    )
                )
            return
        names = () if y is None else _texts(y)
        if names is None:
            self.problem(f"{where}.y", "is not a field name or a list of them")
            return
        x_field = x.get(name) if isinstance(x, Mapping) else x
        self.sources.append(
            PlotSource(
                _join(folder, name),
                x_field if isinstance(x_field, str) else None,
                names,
                common["title"],
                common["template"],
            )
        )


def plot_sources(
    content: str | bytes, path: str = "dvc.yaml"
) -> tuple[list[PlotSource], list[str]]:
    """The plots a dvc.yaml declares, and one-line problems (Markdown) for what it cannot read.

    Reads the top-level `plots:` (paths relative to the dvc.yaml's folder) and each stage's
    `plots:` outputs (relative to its `wdir`). Never raises.
    """
    reader = _Reader(path)
    if len(content) > FILE_LIMIT:
        reader.problems.append(f"{code_span(path)} is over the 10 MiB limit")
        return [], reader.problems
    try:
        data = load_yaml(content)
    except UnicodeDecodeError:
        return [], [f"{code_span(path)} is not UTF-8 text"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        return [], [f"{code_span(path)} is not valid YAML{line}"]
    except (RecursionError, FileLimitExceeded):
        return [], [f"{code_span(path)} is nested too deeply or too large to read"]
    except ValueError:  # an integer YAML 1.2 accepts but Python cannot convert (`0x_`)
        return [], [f"{code_span(path)} is not valid YAML"]
    if data is None:
        return [], []
    if not isinstance(data, Mapping):
        return [], [f"{code_span(path)} is not a mapping at the top level"]
    folder = posixpath.dirname(path)
    if data.get("plots") is not None:
        for name, props in reader.entries(data["plots"], "plots"):
            reader.add(name, props, folder, f"plots.{name}")
    stages = data.get("stages")
    if isinstance(stages, Mapping):
        for stage_name, stage in stages.items():
            body = stage.get("do", stage) if isinstance(stage, Mapping) else None
            if not isinstance(body, Mapping) or body.get("plots") is None:
                continue
            wdir = body.get("wdir", ".")
            base = _join(folder, wdir if isinstance(wdir, str) else ".")
            where = f"stages.{stage_name}.plots"
            for name, props in reader.entries(body["plots"], where):
                reader.add(name, props, base, f"{where}.{name}")
    return reader.sources, reader.problems


def is_curve(source: PlotSource) -> bool:
    """Whether a plot draws a line over steps (not an image, a confusion matrix, a scatter)."""
    return source.template is None or source.template in LINE_TEMPLATES


def expand_directories(sources: Sequence[PlotSource], paths: Iterable[str]) -> list[PlotSource]:
    """Line plots with each directory replaced by the data files under it, sorted.

    `paths` are the repository's files (at head and base); dvclive declares its folder
    `dvclive/plots/metrics` and writes one TSV per metric below it. Files of other kinds
    (images, YAML) are left out.
    """
    files = sorted(set(paths))
    expanded: list[PlotSource] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for source in sources:
        if not is_curve(source):
            continue
        if source.file.lower().endswith(DATA_EXTENSIONS):
            found = [source.file]
        elif posixpath.splitext(source.file)[1]:
            continue  # an image or a format not drawn here
        else:
            prefix = source.file.rstrip("/") + "/"
            found = [
                f for f in files if f.startswith(prefix) and f.lower().endswith(DATA_EXTENSIONS)
            ]
        for file in found:
            if (file, source.y) in seen:
                continue
            seen.add((file, source.y))
            expanded.append(PlotSource(file, source.x, source.y, source.title, source.template))
    return expanded


# ---------------------------------------------------------------------------- data files


@dataclass(frozen=True)
class Table:
    """A plot data file by column: each field's values as read, None where a row lacks it."""

    fields: tuple[str, ...]
    columns: Mapping[str, tuple[Any, ...]]
    length: int


def read_table(content: bytes, path: str) -> Table | str:
    """A TSV, CSV (with a header row) or JSON (a list of objects) file, or why not (one line).

    A JSON object is read as DVC does: its first field that holds a list of objects.
    """
    if len(content) > FILE_LIMIT:
        return "over the 10 MiB limit"
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    extension = posixpath.splitext(path)[1].lower()
    if extension == ".json":
        return _json_table(text)
    return _delimited_table(text, "\t" if extension == ".tsv" else ",")


def _delimited_table(text: str, delimiter: str) -> Table | str:
    try:
        # From a stream, not split lines: a quoted field may hold a newline.
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        lines = [row for row in reader if row]
    except csv.Error as exc:
        return f"not {'TSV' if delimiter == chr(9) else 'CSV'}: {' '.join(str(exc).split())}"
    if not lines:
        return "empty"
    header = tuple(lines[0])
    if len(lines) == 1:
        return "no rows under the header"
    if len(set(header)) != len(header):
        return "a field name appears twice in the header"
    for number, row in enumerate(lines[1:], start=1):
        if len(row) != len(header):
            return f"row {number} has {len(row)} fields, the header {len(header)}"
    columns = dict(zip(header, zip(*lines[1:], strict=True), strict=True))
    return Table(header, columns, len(lines) - 1)


def _json_table(text: str) -> Table | str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON (line {exc.lineno})"
    except RecursionError:
        return "JSON nested too deeply"
    if isinstance(data, Mapping):
        data = next((value for value in data.values() if isinstance(value, list) and value), None)
    if not isinstance(data, list) or not all(isinstance(row, Mapping) for row in data):
        return "not a list of objects"
    if not data:
        return "no rows"
    rows = [{str(key): value for key, value in row.items()} for row in data]
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    columns = {field: tuple(row.get(field) for row in rows) for field in fields}
    return Table(tuple(fields), columns, len(rows))


def _number(value: Any) -> float | None:
    if type(value) is str:  # the usual case, TSV and CSV cells, first: files run to 10 MiB
        try:
            return float(value)  # surrounding whitespace is allowed, as in DVC's reading
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def default_fields(table: Table, x: str | None) -> tuple[str, ...]:
    """DVC's default y: the last field that is not the x field (nor dvclive's step/timestamp)."""
    skipped = {x or "step", "step", "timestamp"}
    candidates = [field for field in table.fields if field not in skipped]
    return tuple(candidates[-1:])


@dataclass(frozen=True)
class Series:
    """(step, value) points sorted by step; `dropped` values were not finite numbers."""

    points: tuple[Point, ...]
    dropped: int = 0


def read_series(table: Table, x: str | None, y: str) -> Series | str:
    """The points of field `y` over `x` (else `step`, else the row index), or why not.

    A step written twice keeps its last value: a resumed run writes its steps again.
    """
    if y not in table.fields:
        return f"has no field {code_span(y)}"
    step_field = x if x is not None else ("step" if "step" in table.fields else None)
    if step_field is not None and step_field not in table.fields:
        return f"has no field {code_span(step_field)}"
    by_step: dict[float, float] = {}
    dropped = 0
    raw_steps = table.columns[step_field] if step_field is not None else range(table.length)
    for index, (raw_step, raw) in enumerate(zip(raw_steps, table.columns[y], strict=True)):
        step = _number(raw_step)
        if step is None or not math.isfinite(step):
            assert step_field is not None  # a row index is always a number
            shown = code_span(str(raw_step), 20)
            return f"row {index + 1}: {shown} in {code_span(step_field)} is not a number"
        value = _number(raw)
        if value is None:
            if raw is None or raw == "":
                dropped += 1
                continue
            return f"row {index + 1}: {code_span(str(raw), 20)} in {code_span(y)} is not a number"
        if not math.isfinite(value):
            dropped += 1
            continue
        by_step[step] = value
    return Series(tuple(sorted(by_step.items())), dropped)


# ---------------------------------------------------------------------------- downsampling


def _select(steps: Sequence[float], columns: Sequence[Sequence[float]], limit: int) -> list[int]:
    """Indices of at most `limit` points, the first and last always, chosen by
    largest-triangle-three-buckets over every column at once.

    Each bucket keeps the point whose triangles (with the point kept before it and the mean
    of the next bucket) have the largest area summed over the columns, each column scaled
    by its own range so that one does not drown the other. Peaks and dips survive, which
    an even stride would skip. Ties go to the earlier point.
    """
    count = len(steps)
    if count <= limit or limit < 3:
        return list(range(count)) if count <= limit else [0, count - 1][: max(limit, 0)]
    x_scale = (steps[-1] - steps[0]) or 1.0
    scales = [(max(column) - min(column)) or 1.0 for column in columns]
    every = (count - 2) / (limit - 2)
    chosen = [0]
    previous = 0
    for bucket in range(limit - 2):
        start = int(bucket * every) + 1
        end = int((bucket + 1) * every) + 1
        after_end = min(int((bucket + 2) * every) + 1, count)
        after = range(end, after_end) if end < after_end else range(count - 1, count)
        mean_x = sum(steps[i] for i in after) / len(after)
        means = [sum(column[i] for i in after) / len(after) for column in columns]
        best, best_area = start, -1.0
        for index in range(start, min(end, count - 1)):
            area = 0.0
            for column, mean, scale in zip(columns, means, scales, strict=True):
                ax, ay = steps[previous] / x_scale, column[previous] / scale
                bx, by = steps[index] / x_scale, column[index] / scale
                cx, cy = mean_x / x_scale, mean / scale
                area += abs((ax - cx) * (by - ay) - (ax - bx) * (cy - ay))
            if area > best_area:
                best, best_area = index, area
        chosen.append(best)
        previous = best
    chosen.append(count - 1)
    return chosen


def downsample(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most `limit` of the points, first and last kept, by largest-triangle-three-buckets."""
    indices = _select([p[0] for p in points], [[p[1] for p in points]], limit)
    return [points[i] for i in indices]


def _value_at(points: Sequence[Point], steps: Sequence[float], step: float) -> float:
    """The series at `step`: its own value, a straight line between its neighbours, or its
    first/last value held outside its range."""
    index = bisect.bisect_left(steps, step)
    if index < len(steps) and steps[index] == step:
        return points[index][1]
    if index == 0:
        return points[0][1]
    if index == len(steps):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[index - 1], points[index]
    return y0 + (y1 - y0) * (step - x0) / (x1 - x0)


# ---------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """One chart: field `y` of `file` at base and head (None: absent or unreadable there)."""

    file: str
    y: str
    title: str | None = None
    base: Series | None = None
    head: Series | None = None
    problems: tuple[str, ...] = ()  # one Markdown line each
    x: str = "step"  # the x field's name, for the axis

    @property
    def drawable(self) -> bool:
        return any(s is not None and s.points for s in (self.base, self.head))


def curves_for(source: PlotSource, base: bytes | None, head: bytes | None) -> list[Curve]:
    """The charts of one plot file, from its bytes at base and head (None: not there).

    Never raises: a file that cannot be read gives a curve with a one-line problem.
    """
    problems: list[str] = []
    tables: dict[str, Table | None] = {}
    for side, content in (("base", base), ("head", head)):
        table = None if content is None else read_table(content, source.file)
        if isinstance(table, str):
            problems.append(f"{code_span(source.file)} at {side}: {table}")
            table = None
        tables[side] = table
    if tables["base"] is None and tables["head"] is None:
        if not problems:
            return []
        return [
            Curve(
                source.file,
                source.y[0] if source.y else "",
                source.title,
                None,
                None,
                tuple(problems),
            )
        ]
    reference = tables["head"] or tables["base"]
    assert reference is not None
    fields = source.y or default_fields(reference, source.x)
    if not fields:
        problems.append(f"{code_span(source.file)} has no field to plot")
        return [Curve(source.file, "", source.title, None, None, tuple(problems))]
    x_name = source.x or ("step" if "step" in reference.fields else "index")
    curves = []
    for field in fields:
        field_problems = list(problems)
        series: dict[str, Series | None] = {}
        for side in ("base", "head"):
            table = tables[side]
            read = None if table is None else read_series(table, source.x, field)
            if isinstance(read, str):
                field_problems.append(f"{code_span(source.file)} at {side} {read}")
                read = None
            series[side] = read
        curves.append(
            Curve(
                source.file,
                field,
                source.title,
                series["base"],
                series["head"],
                tuple(field_problems),
                x_name,
            )
        )
    return curves


_CHART_TEXT = re.compile(r"[^A-Za-z0-9 _.,:/()+\-]")


def _chart_text(text: str, limit: int = 60) -> str:
    # Mermaid strings end at `"`; and text from a repository is shown without markup.
    text = " ".join(_CHART_TEXT.sub("_", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decimal(value: float) -> str:
    """A number as Mermaid's xychart reads it: no exponent, about 6 significant digits."""
    if value == 0 or not math.isfinite(value):
        return "0"
    digits = max(0, min(15, 5 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _step_label(step: float) -> str:
    return str(int(step)) if step.is_integer() and abs(step) < 1e15 else _decimal(step)


def _chart(curve: Curve, base_label: str, head_label: str, limit: int) -> str:
    lines: list[tuple[str, str, Series]] = [
        (name, colour, series)
        for name, colour, series in (
            ("base", BASE_COLOUR, curve.base),
            ("head", HEAD_COLOUR, curve.head),
        )
        if series is not None and series.points
    ]
    steps = sorted({p[0] for _, _, series in lines for p in series.points})
    notes: list[str] = []
    columns = []
    for name, _, series in lines:
        own = [p[0] for p in series.points]
        exact = dict(series.points)
        columns.append(
            [
                exact[step] if step in exact else _value_at(series.points, own, step)
                for step in steps
            ]
        )
        if own[0] > steps[0] or own[-1] < steps[-1]:
            notes.append(
                f"{name} has steps {_step_label(own[0])}–{_step_label(own[-1])} only;"
                " its line is held flat beyond them"
            )
        if series.dropped:
            notes.append(f"{name}: {series.dropped} values that are not numbers left out")
    indices = _select(steps, columns, limit)
    if len(indices) < len(steps):
        notes.append(f"{len(steps)} steps shown as {len(indices)}")
    shown = [[column[i] for i in indices] for column in columns]
    values = [v for column in shown for v in column]
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    palette = ", ".join(colour for _, colour, _ in lines)
    title = _chart_text(curve.title or curve.y)
    y_title = _chart_text(curve.y)
    labels = ", ".join(f'"{_step_label(steps[i])}"' for i in indices)
    plotted = "\n".join(
        f'    line "{name}" [{", ".join(_decimal(v) for v in column)}]'
        for (name, _, _), column in zip(lines, shown, strict=True)
    )
    names = {
        "base": f"grey: base {code_span(base_label, 40)}",
        "head": f"blue: head {code_span(head_label, 40)}",
    }
    legend = ", ".join(names[name] for name, _, _ in lines)
    heading = f"{code_span(curve.file)} {code_span(curve.y)}"
    if curve.title:
        heading = f"{code_span(curve.title)} ({heading})"
    text = (
        f"**{heading}** — {legend}\n\n"
        "```mermaid\n"
        f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%\n'
        "xychart-beta\n"
        f'    title "{title}"\n'
        f'    x-axis "{_chart_text(curve.x)}" [{labels}]\n'
        f'    y-axis "{y_title}" {_decimal(low - pad)} --> {_decimal(high + pad)}\n'
        f"{plotted}\n"
        "```\n"
    )
    if notes:
        text += "\n" + "".join(f"- {note}\n" for note in notes)
    return text


def render_curves(
    curves: Sequence[Curve],
    base_label: str,
    head_label: str,
    max_charts: int = MAX_CHARTS,
    max_points: int = MAX_POINTS,
) -> str:
    """The training curves folded in `<details>`: at most `max_charts` charts of at most
    `max_points` points, a note naming the plots left out, and the problems. Empty when
    there is nothing to show.
    """
    drawable = [curve for curve in curves if curve.drawable]
    problems = list(dict.fromkeys(p for curve in curves for p in curve.problems))
    if not drawable and not problems:
        return ""
    charts = drawable[:max_charts]
    parts = [_chart(curve, base_label, head_label, max_points) for curve in charts]
    left = drawable[max_charts:]
    if left:
        names = ", ".join(f"{code_span(c.file)} {code_span(c.y)}" for c in left[:_NAMES_SHOWN])
        more = f" and {len(left) - _NAMES_SHOWN} more" if len(left) > _NAMES_SHOWN else ""
        parts.append(
            f"{len(charts)} of {len(drawable)} plots shown (at most {max_charts});"
            f" not shown: {names}{more}\n"
        )
    if problems:
        listed = "".join(f"- {problem}\n" for problem in problems[:_PROBLEMS_SHOWN])
        if len(problems) > _PROBLEMS_SHOWN:
            listed += f"- … and {len(problems) - _PROBLEMS_SHOWN} more\n"
        parts.append("Plots that could not be read:\n\n" + listed)
    count = f"{len(charts)} plot" + ("" if len(charts) == 1 else "s")
    return (
        f"<details><summary>Training curves ({count})</summary>\n\n"
        + "\n".join(parts)
        + "\n</details>\n"
    )
