"""Rendering an evaluation: the sticky PR comment and the `mlgate/quality` check-run output."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.core.dvc import DataChange, Output, ParamChange
from bot.core.evaluation_result import Evaluation, Metrics
from bot.core.gates import GateResult, improved, verdict
from bot.core.markdown_escape import clip, code, escape, inline, one_line, plain, table_cell
from bot.core.metrics import (
    MetricValue,
    Stat,
    diff_metrics,
    format_change,
    format_value,
    locate_key,
)

# GitHub refuses a comment body above 65,536 characters (422 "Body is too long"); we stay
# one below, at most 65,535 counted as UTF-16 units, like the check-run summary.
COMMENT_LIMIT = 65536
# Check-run `output.summary` and `output.text` take at most 65,535 characters (REST docs).
SUMMARY_LIMIT = 65535
# "The Checks API limits the number of annotations to a maximum of 50 per API request."
ANNOTATIONS_PER_REQUEST = 50
# The comment is found again by this marker; the data block is read by tools and tests.
MARKER = "<!-- mlgate:report -->"
DATA_PREFIX = "<!-- mlgate:data "
DATA_SUFFIX = " -->"
# The machine-readable block never takes more than this, however many metrics there are.
DATA_LIMIT = 24_000
TREND_POINTS = 20
TREND_CHARTS = 8
LOG_LINES = 200
LOG_LINE_CHARS = 500
CELL_CHARS = 160
NOTE_CHARS = 1_000
# Room kept for the "left out" note and the "… more rows" lines once anything is cut.
_TRUNCATION_RESERVE = 1_200

ReportVerdict = Literal["passed", "failed", "overridden", "no_gates", "skipped", "error"]
Conclusion = Literal["success", "failure", "skipped"]


@dataclass(frozen=True)
class Annotation:
    """A check-run annotation on a metrics-file line."""

    path: str
    start_line: int
    message: str
    title: str
    annotation_level: Literal["notice", "warning", "failure"] = "failure"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.start_line,
            "annotation_level": self.annotation_level,
            "message": self.message,
            "title": self.title,
        }


@dataclass(frozen=True)
class CheckRunOutput:
    """Conclusion and `output` of the `mlgate/quality` check run."""

    conclusion: Conclusion
    title: str
    summary: str
    annotations: tuple[Annotation, ...] = ()

    def outputs(self) -> list[dict[str, Any]]:
        """One `output` object per request: GitHub takes 50 annotations per request and
        appends those of later updates, so the first carries the first 50, and so on."""
        base: dict[str, Any] = {"title": self.title, "summary": self.summary}
        batches = annotation_batches(self.annotations)
        if not batches:
            return [base]
        return [{**base, "annotations": batch} for batch in batches]


def annotation_batches(
    annotations: Sequence[Annotation], size: int = ANNOTATIONS_PER_REQUEST
) -> list[list[dict[str, Any]]]:
    """Annotations as request-sized lists of dicts (50 each, GitHub's per-request limit)."""
    items = [a.as_dict() for a in annotations]
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------- text helpers


def text_length(text: str) -> int:
    """Length as GitHub may count it: UTF-16 code units, never fewer than characters."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# Every text that may come from a repository (metric, parameter and file names, values, branch
# names, log lines, error messages) goes through one of these: a code span for names and values,
# escaped prose for sentences, mlgate's own Markdown with only its code spans kept for notes and
# errors, a fenced block for the log (bot/core/markdown_escape.py).


def _cell(text: str) -> str:
    """A table cell of prose: one line, clipped, escaped, pipes escaped."""
    return table_cell(escape(text, CELL_CHARS, line_start=False))


def _code_cell(text: str) -> str:
    """A table cell holding a name or value as a code span."""
    return table_cell(code(text, CELL_CHARS))


def _inline(text: str) -> str:
    """A skip reason or an error for a Markdown line: one line, clipped, code spans kept and
    everything else escaped."""
    return inline(text, NOTE_CHARS)


def _note(text: str) -> str:
    """A note: as `_inline`, but an `@login` of the user who acted stays a mention."""
    return inline(text, NOTE_CHARS, users=True)


# The override as the evaluation records it: `@login: reason`.
_OVERRIDE = re.compile(r"@([A-Za-z0-9](?:[A-Za-z0-9-]{0,38})): (.*)", re.S)


def _override(text: str) -> str:
    # The approver's login is GitHub's (letters, digits, hyphens) and stays a mention; the
    # reason is whatever the comment said.
    match = _OVERRIDE.fullmatch(text)
    if match is None:
        return _inline(text)
    return f"@{match[1]}: {_inline(match[2])}"


def _short(sha: str) -> str:
    return sha[:7]


def _short_hash(digest: str | None) -> str:
    if not digest:
        return "—"
    return table_cell(code(f"{digest.removesuffix('.dir')[:7]}…"))


def _count(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str) -> str:
    return f"{_count(n)} {word}" if n == 1 else f"{_count(n)} {word}s"


def _safe_url(url: str | None) -> str | None:
    # Only a plain http(s) URL can sit inside Markdown link syntax without breaking it.
    if url and len(url) <= 400 and re.fullmatch(r"https?://[^\s()<>\[\]]+", url):
        return url
    return None


def human_size(n: int, signed: bool = False) -> str:
    """Bytes in decimal units (kB, MB, GB, as `du --si`): `12.4 MB`; `+12.4 MB` if signed."""
    sign = ("+" if n > 0 else "-" if n < 0 else "±") if signed else ("-" if n < 0 else "")
    size = float(abs(n))
    if size < 1000:
        return f"{sign}{abs(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        size /= 1000
        if size < 1000 or unit == "PB":
            return f"{sign}{size:.1f} {unit}"
    raise AssertionError("unreachable")


def _percent(value: float) -> str:
    return f"{value:+.1f}%"


# ---------------------------------------------------------------------------- verdict


def report_verdict(evaluation: Evaluation) -> ReportVerdict:
    """The report's verdict: skipped, error, no_gates, passed, failed, or failed but overridden."""
    if evaluation.skipped is not None:
        return "skipped"
    if evaluation.error is not None:
        return "error"
    gate_verdict = verdict(evaluation.gates)
    if gate_verdict == "failed" and evaluation.override:
        return "overridden"
    return gate_verdict


def conclusion(evaluation: Evaluation) -> Conclusion:
    """The `mlgate/quality` conclusion: an override accepts a failure, as a green check."""
    state = report_verdict(evaluation)
    if state == "skipped":
        return "skipped"
    return "failure" if state in ("failed", "error") else "success"


def _verdict_line(evaluation: Evaluation) -> str:
    state = report_verdict(evaluation)
    gates = evaluation.gates
    failed = [g for g in gates if not g.passed]
    if state == "skipped":
        return f"⏭️ **Not evaluated**: {_inline(evaluation.skipped or '')}"
    if state == "error":
        return f"❌ **Evaluation failed**: {_inline(evaluation.error or '')}"
    if state == "no_gates":
        return "ℹ️ **No quality gates configured**: metrics are compared, nothing is enforced."
    if state == "passed":
        return f"✅ **Quality gate passed**: {len(gates)} of {len(gates)} gates hold."
    names = sorted({g.metric for g in failed})
    line = f"{len(failed)} of {len(gates)} gates failed ({_names(names)})."
    if state == "overridden":
        return (
            f"⚠️ **Quality gate failed, overridden** by {_override(evaluation.override or '')}."
            f" {line}"
        )
    return f"❌ **Quality gate failed**: {line}"


def _names(names: Sequence[str]) -> str:
    """Metric names as code spans, as many as fit in a note; whole spans only."""
    shown: list[str] = []
    used = 0
    for name in names:
        span = code(name, CELL_CHARS)
        if shown and used + len(span) > NOTE_CHARS:
            return ", ".join(shown) + f" and {_count(len(names) - len(shown))} more"
        shown.append(span)
        used += len(span) + 2
    return ", ".join(shown)


# ---------------------------------------------------------------------------- metric rows


@dataclass(frozen=True)
class _Row:
    file: str | None
    key: str
    old: MetricValue | None
    new: MetricValue | None
    diff: int | float | None
    changed: bool
    gates: tuple[GateResult, ...]
    stat: Stat | None

    @property
    def failed(self) -> bool:
        return any(not g.passed for g in self.gates)


def _noise_for(noise: Mapping[str, Stat] | None, file: str | None, key: str) -> Stat | None:
    if noise is None:
        return None
    return noise.get(f"{file}:{key}", noise.get(key))


def _rows(evaluation: Evaluation) -> list[_Row]:
    by_metric: dict[tuple[str | None, str], list[GateResult]] = {}
    for result in evaluation.gates:
        by_metric.setdefault((result.file, result.metric), []).append(result)
    rows: list[_Row] = []
    for path, entries in diff_metrics(evaluation.old, evaluation.new, all=True).items():
        for key, entry in entries.items():
            gates = tuple(by_metric.pop((path, key), []))
            rows.append(
                _Row(
                    path,
                    key,
                    entry["old"],
                    entry["new"],
                    entry.get("diff"),
                    entry["old"] != entry["new"],
                    gates,
                    _noise_for(evaluation.noise, path, key),
                )
            )
    # Gates on metrics found nowhere (or in a file absent at both commits) still get a row.
    for (file, key), results in sorted(
        by_metric.items(), key=lambda item: (item[0][0] or "", item[0][1])
    ):
        rows.append(_Row(file, key, None, None, None, True, tuple(results), None))
    return rows


def _label(row: _Row, many_files: bool) -> str:
    if row.file is not None and many_files:
        return f"{row.file}:{row.key}"
    return row.key


def _change_text(row: _Row) -> str:
    if row.old is None and row.new is None:
        return "missing"
    if row.old is None:
        return "new"
    if row.new is None:
        return "removed"
    if row.diff is None:
        return "changed" if row.changed else "="
    if isinstance(row.diff, float) and not math.isfinite(row.diff):
        return format_value(row.diff)
    text = format_change(row.diff)
    if isinstance(row.old, int | float) and row.old and row.diff:
        text += f" ({_percent(row.diff / abs(row.old) * 100)})"
    if row.diff and row.gates:
        text += " better" if improved(row.gates[0].gate, row.diff) else " worse"
    if row.diff and row.stat is not None and row.stat.within_noise(row.diff):
        text += f", within noise (±{format_value(row.stat.spread)})"
    return text


def _value_cell(value: MetricValue | None) -> str:
    # A string metric is text from the repository; numbers are formatted here.
    return _code_cell(value) if isinstance(value, str) else _cell(format_value(value))


def _head_cell(row: _Row) -> str:
    text = _value_cell(row.new)
    if row.stat is not None and row.new is not None:
        text += " " + _cell(f"± {format_value(row.stat.spread)} (n={row.stat.n})")
    return text


def _gate_text(row: _Row) -> str:
    return "<br>".join(f"{'✅' if g.passed else '❌'} {_cell(g.reason)}" for g in row.gates)


_METRIC_HEADER = "| Metric | Base | Head | Change | Gate |\n|---|---:|---:|---|---|\n"


def _metric_line(row: _Row, many_files: bool) -> str:
    cells = [
        _code_cell(_label(row, many_files)),
        _value_cell(row.old),
        _head_cell(row),
        _cell(_change_text(row)),
        _gate_text(row),
    ]
    return "| " + " | ".join(cells) + " |\n"


# ---------------------------------------------------------------------------- other tables


_DATA_HEADER = "| Path | Change | Hash | Files | Size |\n|---|---|---|---:|---:|\n"


def _files_text(change: DataChange) -> str:
    old = change.old.nfiles if change.old is not None else None
    new = change.new.nfiles if change.new is not None else None
    if old is None and new is None:
        return "—"
    if old is None or new is None:
        return _count(old if old is not None else new or 0)
    return _count(new) if old == new else f"{_count(old)} → {_count(new)}"


def _hash_of(out: Output | None) -> str:
    if out is None:
        return "—"
    if out.md5 is None and out.fingerprint is not None:
        return "(listed per file)"
    return _short_hash(out.md5)


def _data_line(change: DataChange) -> str:
    delta = change.size_delta
    size = "?" if delta is None else human_size(delta, signed=True)
    hashes = f"{_hash_of(change.old)} → {_hash_of(change.new)}"
    return (
        f"| {_code_cell(change.path)} | {change.kind} | {hashes}"
        f" | {_files_text(change)} | {size} |\n"
    )


_PARAM_HEADER = "| File | Parameter | Base | Head |\n|---|---|---|---|\n"


def _param_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return _code_cell(value)
    return _code_cell(json.dumps(value, sort_keys=True, default=str))


def _param_line(change: ParamChange) -> str:
    return (
        f"| {_code_cell(change.file)} | {_code_cell(change.key)} | {_param_cell(change.old)}"
        f" | {_param_cell(change.new)} |\n"
    )


# ---------------------------------------------------------------------------- trend


def _chart_number(value: float) -> str:
    # Mermaid's lexer reads no exponent: 1e-05 must be written out.
    text = f"{value:.6g}"
    return text if "e" not in text else f"{value:.12f}".rstrip("0").rstrip(".")


def _chart_text(text: str) -> str:
    # Mermaid strings cannot hold `"`, a backtick run could close the code fence, `%%` starts a
    # Mermaid directive or comment, and Mermaid may draw a label as HTML (an <img> would load).
    text = text.replace('"', "'").replace("`", "'").replace("%%", "%")
    text = text.replace("<", "‹").replace(">", "›")
    return clip(one_line(text), 80)


def _charts(
    gates: Sequence[GateResult],
    points: Sequence[tuple[str, Metrics]],
    last: tuple[str, Metrics] | None = None,
) -> list[str]:
    """A Mermaid line chart per gated metric over `points` (label, metrics), then `last`."""
    targets = sorted({(g.file, g.metric) for g in gates if g.file is not None})
    charts: list[str] = []
    for file, key in targets[:TREND_CHARTS]:
        assert file is not None
        series: list[tuple[str, float]] = []
        for label, metrics in points:
            value = metrics.get(file, {}).get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                series.append((label, float(value)))
        if last is not None:
            value = last[1].get(file, {}).get(key)
            if series and isinstance(value, int | float) and math.isfinite(value):
                series.append((last[0], float(value)))
        if not series:
            continue
        values = [v for _, v in series]
        low, high = min(values), max(values)
        pad = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
        labels = ", ".join(f'"{_chart_text(label)}"' for label, _ in series)
        charts.append(
            "```mermaid\nxychart-beta\n"
            f'    title "{_chart_text(key)} ({_chart_text(file)})"\n'
            f"    x-axis [{labels}]\n"
            f'    y-axis "{_chart_text(key)}" {_chart_number(low - pad)} --> '
            f"{_chart_number(high + pad)}\n"
            f"    line [{', '.join(_chart_number(v) for v in values)}]\n```\n"
        )
    return charts


def _trend(evaluation: Evaluation) -> str:
    points = [(_short(b.sha), b.metrics) for b in list(evaluation.trend)[-TREND_POINTS:]]
    charts = _charts(evaluation.gates, points, ("this PR", evaluation.new))
    if not charts:
        return ""
    title = (
        f"#### Trend on {code(evaluation.base_ref, CELL_CHARS)} (last {len(points)} commits)\n\n"
    )
    return title + "\n".join(charts) + "\n"


# ---------------------------------------------------------------------------- log tail

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _log_lines(log: str) -> list[str]:
    lines = []
    # Split on "\n" only: splitlines() would also split at the "\r" of progress bars.
    for raw in _ANSI.sub("", log).replace("\r\n", "\n").split("\n"):
        line = raw.rsplit("\r", 1)[-1]  # a progress bar redraws the line; keep what it showed
        # Never let a log line look like one of our markers to whoever scans the comment.
        line = line.replace("<!--", "<!-\u200c-")
        lines.append(clip(line, LOG_LINE_CHARS))
    while lines and not lines[-1].strip():
        lines.pop()
    return lines[-LOG_LINES:]


def log_details(log: str, max_lines: int = LOG_LINES) -> str:
    """The last `max_lines` lines of a run's log, folded as the comment shows them ("" for an
    empty log): for other texts that carry a log, such as a failed retrain's check."""
    lines = _log_lines(log)[-max_lines:] if max_lines > 0 else []
    return _log_block(lines) if lines else ""


def _log_block(lines: Sequence[str]) -> str:
    longest = max((len(m) for m in re.findall(r"`+", "\n".join(lines))), default=0)
    fence = "`" * max(3, longest + 1)
    body = "\n".join(lines)
    return (
        f"<details><summary>Log (last {_plural(len(lines), 'line')})</summary>\n\n"
        f"{fence}text\n{body}\n{fence}\n\n</details>\n\n"
    )


# ---------------------------------------------------------------------------- data block


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or Infinity; spell them as strings so the block stays valid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return value


def _gate_json(result: GateResult) -> dict[str, Any]:
    return {"passed": result.passed, "reason": result.reason, "within_noise": result.within_noise}


def _output_json(out: Output | None) -> dict[str, Any] | None:
    if out is None:
        return None
    return {"hash": out.md5, "size": out.size, "nfiles": out.nfiles}


def _data_json(
    evaluation: Evaluation,
    rows: Sequence[_Row],
    metric_rows: int,
    data_rows: int,
    with_params: bool,
    truncated: Sequence[str],
) -> str:
    metrics: dict[str, dict[str, Any]] = {}
    missing: list[dict[str, Any]] = []
    for row in rows[:metric_rows]:
        if row.file is None or (row.old is None and row.new is None):
            missing.extend(
                {"metric": row.key, "file": row.file, **_gate_json(g)} for g in row.gates
            )
            continue
        entry: dict[str, Any] = {"old": _json_safe(row.old), "new": _json_safe(row.new)}
        if row.diff is not None:
            entry["diff"] = _json_safe(row.diff)
        if row.gates:
            failed = [g for g in row.gates if not g.passed]
            entry["gate"] = _gate_json(failed[0] if failed else row.gates[0])
        metrics.setdefault(row.file, {})[row.key] = entry
    data: dict[str, Any] = {
        "version": 1,
        "head": evaluation.head_sha,
        "base": evaluation.base_sha,
        "verdict": report_verdict(evaluation),
        "metrics": metrics,
        "data": [
            {
                "path": c.path,
                "change": c.kind,
                "old": _output_json(c.old),
                "new": _output_json(c.new),
            }
            for c in list(evaluation.data_changes)[:data_rows]
        ],
    }
    if missing:
        data["gates_not_found"] = missing
    if with_params:
        data["params"] = [
            {"file": p.file, "key": p.key, "old": _json_safe(p.old), "new": _json_safe(p.new)}
            for p in evaluation.param_changes
        ]
    if evaluation.leaderboard_data is not None:
        data["leaderboard"] = _json_safe(evaluation.leaderboard_data)
    if truncated:
        data["truncated"] = list(truncated)
    text = json.dumps(
        data,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    # Inside an HTML comment, `--` and `>` could end it early: escape them as JSON escapes
    # (outside strings JSON has no `--` or `>`, so this only touches string contents).
    text = text.replace("--", "-\\u002d").replace(">", "\\u003e").replace("<", "\\u003c")
    return f"{DATA_PREFIX}{text}{DATA_SUFFIX}"


def _fit_data(evaluation: Evaluation, rows: Sequence[_Row]) -> str:
    """The data block, cut down (unchanged metrics, params, then rows) to DATA_LIMIT."""
    # When rows must go, failed gates go last, then other gated metrics, then changes.
    important = sorted(
        (r for r in rows if r.changed or r.gates),
        key=lambda r: (not r.failed, not r.gates, r.file or "", r.key),
    )
    plain = [r for r in rows if not (r.changed or r.gates)]
    ordered = important + plain
    n_data = len(evaluation.data_changes)

    def build(metric_rows: int, data_rows: int, params: bool, notes: list[str]) -> str:
        return _data_json(evaluation, ordered, metric_rows, data_rows, params, notes)

    text = build(len(ordered), n_data, True, [])
    if text_length(text) <= DATA_LIMIT:
        return text
    notes = ["unchanged metrics"]
    text = build(len(important), n_data, True, notes)
    if text_length(text) <= DATA_LIMIT:
        return text
    notes.append("params")
    text = build(len(important), n_data, False, notes)
    if text_length(text) <= DATA_LIMIT:
        return text
    notes.append("data")
    data_rows = _largest_fitting(
        n_data, lambda n: text_length(build(len(important), n, False, notes)), DATA_LIMIT
    )
    text = build(len(important), data_rows, False, notes)
    if text_length(text) <= DATA_LIMIT:
        return text
    notes.append("metrics")
    metric_rows = _largest_fitting(
        len(important), lambda n: text_length(build(n, data_rows, False, notes)), DATA_LIMIT
    )
    return build(metric_rows, data_rows, False, notes)


def parse_data(body: str) -> dict[str, Any] | None:
    """The machine-readable block of a rendered comment, or None if it has none."""
    start = body.rfind(DATA_PREFIX)
    if start < 0:
        return None
    end = body.find(DATA_SUFFIX, start + len(DATA_PREFIX))
    if end < 0:
        return None
    value = json.loads(body[start + len(DATA_PREFIX) : end])
    return value if isinstance(value, dict) else None


def report_json(
    evaluation: Evaluation,
    *,
    all: bool = False,  # noqa: A002 - the name of `dvc metrics diff --all`
    full: bool = False,
) -> dict[str, Any]:
    """`mlgate report --json`: the metrics diff exactly as `dvc metrics diff --json` gives it.

    With `full`, that diff moves under `metrics`, beside `base` and `head` (shas), `verdict`,
    `gates` (`metric`, `file`, `passed`, `reason`, `within_noise`, `old`, `new`), `data`
    (`path`, `change`, `old`/`new` as `{hash, size, nfiles}` or null) and `params` (`file`,
    `key`, `old`, `new`). Metric values are as DVC prints them (NaN stays NaN).
    """
    diff = diff_metrics(evaluation.old, evaluation.new, all=all)
    if not full:
        return dict(diff)
    return {
        "base": evaluation.base_sha,
        "head": evaluation.head_sha,
        "verdict": report_verdict(evaluation),
        "metrics": diff,
        "gates": [
            {"metric": g.metric, "file": g.file, **_gate_json(g), "old": g.old, "new": g.new}
            for g in evaluation.gates
        ],
        "data": [
            {
                "path": c.path,
                "change": c.kind,
                "old": _output_json(c.old),
                "new": _output_json(c.new),
            }
            for c in evaluation.data_changes
        ],
        "params": [
            {"file": p.file, "key": p.key, "old": p.old, "new": p.new}
            for p in evaluation.param_changes
        ],
    }


# ---------------------------------------------------------------------------- fitting


def _largest_fitting(count: int, size: Callable[[int], int], room: int) -> int:
    """The largest n ≤ count with size(n) ≤ room, for a size that grows with n."""
    low, high = 0, count
    while low < high:
        middle = (low + high + 1) // 2
        if size(middle) <= room:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class _Table:
    """A table that can lose rows from the end; `what` names them in the left-out note."""

    title: str
    header: str
    rows: list[str]
    what: str
    opening: str = ""
    closing: str = ""
    empty: str = ""
    shown: int = -1
    dropped: bool = False

    def render(self) -> str:
        if self.dropped:
            return ""
        if not self.rows:
            return f"{self.title}{self.empty}\n\n" if self.empty else ""
        shown = len(self.rows) if self.shown < 0 else self.shown
        more = len(self.rows) - shown
        if shown == 0:
            return f"{self.title}_{_count(more)} {self.what} left out._\n\n"
        tail = f"\n_… and {_count(more)} more {self.what} left out._\n" if more else ""
        body = self.header + "".join(self.rows[:shown])
        return f"{self.title}{self.opening}{body}{tail}{self.closing}\n"


@dataclass
class _Sections:
    """The report in display order; `fit` cuts the least important parts first."""

    head: str
    metrics: _Table
    unchanged: _Table
    data: _Table
    params: _Table
    trend: str = ""
    log: list[str] = field(default_factory=list)
    tail: str = ""
    slices: str = ""
    curves: str = ""
    leaderboard: str = ""
    details_url: str | None = None
    limit_name: str = ""
    left_out: list[str] = field(default_factory=list)

    def assemble(self) -> str:
        parts = [
            self.head,
            self.metrics.render(),
            self.unchanged.render(),
            self.slices,
            self.leaderboard,
            self.data.render(),
            self.params.render(),
            self.trend,
            self.curves,
            _log_block(self.log) if self.log else "",
            self._note(),
            self.tail,
        ]
        return "".join(parts)

    def _note(self) -> str:
        if not self.left_out:
            return ""
        url = _safe_url(self.details_url)
        link = f" [Full report]({url})" if url else ""
        return f"_Left out to stay under {self.limit_name}: {'; '.join(self.left_out)}.{link}_\n\n"

    def fit(self, budget: int) -> str:
        """Cut, in order: older log lines, unchanged metrics, the training curves, the trend,
        then rows from the end of the parameter, data and metric tables, until the text fits
        the budget."""
        text = self.assemble()
        if text_length(text) <= budget:
            return text
        # Room for the note and "… more rows" lines, which only appear once something is cut.
        room = budget - _TRUNCATION_RESERVE
        if self.log:
            lines = self.log
            self.log = []
            bare = text_length(self.assemble())
            keep = _largest_fitting(
                len(lines), lambda n: bare + (text_length(_log_block(lines[-n:])) if n else 0), room
            )
            self.log = lines[-keep:] if keep else []
            self.left_out.append(
                _plural(len(lines) - keep, "older log line") if keep else "the log tail"
            )
        if text_length(self.assemble()) > room and self.unchanged.rows:
            self.unchanged.dropped = True
            self.left_out.append(_plural(len(self.unchanged.rows), "unchanged metric"))
        if text_length(self.assemble()) > room and self.curves:
            self.curves = ""
            self.left_out.append("the training curves")
        if text_length(self.assemble()) > room and self.trend:
            self.trend = ""
            self.left_out.append("the trend")
        for table in (self.params, self.data, self.metrics):
            if text_length(self.assemble()) <= room or not table.rows:
                continue

            def size(n: int, table: _Table = table) -> int:
                table.shown = n
                return text_length(self.assemble())

            table.shown = _largest_fitting(len(table.rows), size, room)
            total = len(table.rows)
            self.left_out.append(f"{_count(total - table.shown)} of {_count(total)} {table.what}")
        text = self.assemble()
        if text_length(text) <= budget:
            return text
        # Unreachable with capped notes, kept as a guarantee: cut the text before the note
        # and the tail (the data block) to whatever room is left.
        end = self._note() + self.tail
        start = text[: len(text) - len(end)]
        room_left = budget - text_length(end) - 2
        while text_length(start) > room_left:
            start = start[: max(0, len(start) - (text_length(start) - room_left))]
        return start + "\n\n" + end


# ---------------------------------------------------------------------------- renderers


def _sections(evaluation: Evaluation, limit_name: str) -> tuple[_Sections, list[_Row]]:
    rows = _rows(evaluation)
    # Metrics under a slice gate have their own section (failing slices shown, passing folded);
    # the data block still lists every row.
    table_rows = [r for r in rows if r.key not in evaluation.sliced]
    many_files = len({r.file for r in table_rows if r.file is not None}) > 1
    shown = sorted(
        (r for r in table_rows if r.changed or r.failed),
        key=lambda r: (not r.failed, r.file or "", r.key),
    )
    quiet = [r for r in table_rows if not (r.changed or r.failed)]
    metrics = _Table(
        "#### Metrics\n\n",
        _METRIC_HEADER,
        [_metric_line(r, many_files) for r in shown],
        "changed metrics",
        empty=(
            "No metrics files found at base or head."
            if not rows
            else "No other metric changed (slices: below)."
            if len(table_rows) < len(rows)
            else "No metric changed."
        ),
    )
    if evaluation.skipped is not None:
        metrics.rows, metrics.empty, quiet = [], "", []
    unchanged = _Table(
        "",
        _METRIC_HEADER,
        [_metric_line(r, many_files) for r in quiet],
        "unchanged metrics",
        opening=f"<details><summary>{_plural(len(quiet), 'unchanged metric')}</summary>\n\n",
        closing="\n</details>\n",
    )
    data = _Table(
        "#### Data\n\n",
        _DATA_HEADER,
        [_data_line(c) for c in evaluation.data_changes],
        "data changes",
    )
    params = _Table(
        "#### Parameters\n\n",
        _PARAM_HEADER,
        [_param_line(c) for c in evaluation.param_changes],
        "parameter changes",
    )
    notes = "".join(f"> {_note(n)}\n" for n in list(evaluation.notes)[:20])
    head = (
        f"{_verdict_line(evaluation)}\n\n"
        f"Head {code(_short(evaluation.head_sha))} compared with base "
        f"{code(_short(evaluation.base_sha))}.\n\n" + (f"{notes}\n" if notes else "")
    )
    sections = _Sections(
        head,
        metrics,
        unchanged,
        data,
        params,
        details_url=evaluation.details_url,
        limit_name=limit_name,
    )
    return sections, rows


def render_comment(evaluation: Evaluation) -> str:
    """The sticky PR comment: marker, verdict, tables, trend, log, and the data block.

    Always fewer than 65,536 characters (counted as UTF-16 units): parts are left out, least
    important first, with a note; the data block is capped on its own and always kept.
    """
    sections, rows = _sections(evaluation, "GitHub's 65,536-character comment limit")
    sections.head = f"{MARKER}\n### mlgate: model evaluation\n\n{sections.head}"
    if evaluation.skipped is None:
        sections.trend = _trend(evaluation)
        sections.log = _log_lines(evaluation.log_tail)
        sections.slices = f"#### Slices\n\n{evaluation.slices}\n" if evaluation.slices else ""
        sections.curves = evaluation.curves
    if evaluation.leaderboard:
        sections.leaderboard = f"{evaluation.leaderboard}\n"
    sections.tail = _fit_data(evaluation, rows)
    return sections.fit(COMMENT_LIMIT - 1)


def _check_title(evaluation: Evaluation) -> str:
    state = report_verdict(evaluation)
    gates = evaluation.gates
    failed = sum(1 for g in gates if not g.passed)
    # GitHub shows the title as plain text: one line, no control characters, is enough.
    if state == "skipped":
        return plain(f"Skipped: {evaluation.skipped or ''}", 120)
    if state == "error":
        return plain(f"Evaluation failed: {evaluation.error or ''}", 120)
    if state == "no_gates":
        return "No quality gates configured"
    if state == "passed":
        return f"Quality gate passed: {len(gates)} of {len(gates)} gates hold"
    if state == "overridden":
        return plain(f"Overridden by {evaluation.override or ''}", 120)
    return f"Quality gate failed: {failed} of {len(gates)} gates"


def _annotations(evaluation: Evaluation) -> tuple[Annotation, ...]:
    annotations = []
    for result in evaluation.gates:
        if result.passed or result.file is None or result.file not in evaluation.sources:
            continue
        line = locate_key(evaluation.sources[result.file], result.file, result.metric) or 1
        annotations.append(
            Annotation(
                path=result.file,
                start_line=line,
                # Annotations are plain text at GitHub, never Markdown.
                message=plain(result.reason, 60_000),
                title=plain(f"Quality gate failed: {result.metric}", 255),
            )
        )
    return tuple(annotations)


def render_check_run(evaluation: Evaluation) -> CheckRunOutput:
    """Conclusion, title, summary (the comment's tables, ≤ 65,535) and failed-gate annotations."""
    sections, _ = _sections(evaluation, "GitHub's 65,535-character summary limit")
    summary = sections.fit(SUMMARY_LIMIT).rstrip("\n") + "\n"
    return CheckRunOutput(
        conclusion=conclusion(evaluation),
        title=_check_title(evaluation),
        summary=summary,
        annotations=_annotations(evaluation),
    )


# ---------------------------------------------------------------------------- monitoring


def render_monitor_issue(
    env: str,
    latest: Evaluation,
    history: Sequence[tuple[str, Metrics]],
    *,
    breached: bool,
    window: int,
    notes: Sequence[str] = (),
) -> str:
    """The body of an environment's monitoring issue: the same metric table and trend charts
    as the PR comment, the newest upload (`latest.new`) against the deployed commit's own
    evaluation (`latest.old`), and the uploads over time (`history`, oldest first)."""
    rows = _rows(latest)
    many_files = len({r.file for r in rows if r.file is not None}) > 1
    failed = [g for g in latest.gates if not g.passed]
    if breached:
        verdict = (
            f"### ❌ {code(env)} fails its gates: {_plural(window, 'upload')} in a row\n\n"
            + "".join(f"- {code(g.metric)}: {_inline(g.reason)}\n" for g in failed[:20])
        )
    elif failed:
        verdict = f"### ⚠️ {code(env)}: the newest upload fails a gate\n\n"
    else:
        verdict = f"### ✅ {code(env)} meets its gates\n\n"
    table = _METRIC_HEADER + "".join(_metric_line(r, many_files) for r in rows)
    points = list(history)[-TREND_POINTS:]
    charts = _charts(latest.gates, points)
    trend = (
        f"#### Trend in {code(env)} (last {_plural(len(points), 'upload')})\n\n"
        + "\n".join(charts)
        + "\n"
        if charts
        else ""
    )
    lines = "".join(f"> {_note(n)}\n" for n in list(notes)[:20])
    body = (
        f"{verdict}\nNewest upload of {code(_short(latest.head_sha))}"
        f" compared with its evaluation at {code(_short(latest.base_sha))}"
        " (Base: the deployed commit's own metrics, where mlgate has them).\n\n"
        f"{table}\n{trend}" + (f"\n{lines}" if lines else "")
    )
    return body[: COMMENT_LIMIT - 200]
