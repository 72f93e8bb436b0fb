"""Slice gates: a `*` in a gate's key gates every metric it matches; the worst slice is named."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.core.gates import Gate, GateResult, evaluate_gates
from bot.core.markdown_escape import code_span
from bot.core.metrics import MetricValue, Stat, format_value

# Slices listed in the comment, failing ones first; the rest are counted, not listed.
SLICE_ROWS = 50
_METRICS_EXTENSIONS = (".json", ".yaml", ".yml", ".toml")

Metrics = Mapping[str, Mapping[str, MetricValue]]


@dataclass(frozen=True)
class SliceGate(Gate):
    """The gate of one metric matched by a pattern gate; `pattern` is the key as written."""

    pattern: str = ""


def is_pattern(metric: str) -> bool:
    """Whether a gate key names slices (holds a `*`) rather than one metric."""
    return "*" in metric


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """A `*` matches within one dot-separated segment: never across a `.`.

    A segment that is only `*` needs at least one character, so `a.*.f1` never matches
    `a..f1`; `c*` within a segment may match `c` alone.
    """
    parts = []
    for segment in pattern.split("."):
        if segment == "*":
            parts.append("[^.]+")
        else:
            parts.append("[^.]*".join(re.escape(piece) for piece in segment.split("*")))
    return re.compile(r"\.".join(parts))


def matches(pattern: str, key: str) -> bool:
    """Whether a dotted metric key is one of the slices of a pattern."""
    return _compile(pattern).fullmatch(key) is not None


def _scope(metric: str, files: set[str]) -> tuple[str | None, str]:
    """`path:pattern` → (path, pattern) when the path is a metrics file, as gates read keys."""
    for index, char in enumerate(metric):
        if char == ":" and metric[:index] in files:
            return metric[:index], metric[index + 1 :]
    path, sep, rest = metric.partition(":")
    if sep and rest and path.lower().endswith(_METRICS_EXTENSIONS):
        return path, rest
    return None, metric


def expand(gate: Gate, old: Metrics, new: Metrics) -> list[SliceGate]:
    """One gate per metric key (at base or head) that the pattern gate matches, sorted."""
    files = set(old) | set(new)
    path, pattern = _scope(gate.metric, files)
    scanned = [path] if path is not None else sorted(files)
    keys = sorted(
        {
            key
            for file in scanned
            for side in (old, new)
            for key in side.get(file, {})
            if matches(pattern, key)
        }
    )
    return [
        SliceGate(
            metric=key if path is None else f"{path}:{key}",
            direction=gate.direction,
            min=gate.min,
            max=gate.max,
            max_drop=gate.max_drop,
            max_rise=gate.max_rise,
            pattern=gate.metric,
        )
        for key in keys
    ]


def evaluate_with_slices(
    gates: Sequence[Gate],
    old: Metrics,
    new: Metrics,
    noise: Mapping[str, Stat] | None = None,
) -> list[GateResult]:
    """`gates.evaluate_gates`, with each pattern gate expanded to its slices, in gate order.

    A pattern that matches no metric at base or head gives one failing result, "matched no
    metric", whose `gate` is the pattern gate itself.
    """
    results: list[GateResult] = []
    for gate in gates:
        if not is_pattern(gate.metric):
            results.extend(evaluate_gates([gate], old, new, noise))
            continue
        slices = expand(gate, old, new)
        if slices:
            results.extend(evaluate_gates(slices, old, new, noise))
            continue
        files = sorted(set(old) | set(new))
        where = f"looked in {', '.join(files)}" if files else "no metrics files at base or head"
        reason = f"{gate.metric} matched no metric ({where})"
        results.append(GateResult(gate.metric, None, False, reason, gate))
    return results


def _number(value: MetricValue | None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _relative(slack: float, limit: float) -> float:
    # Thresholds of different slices differ (relative max_drop against each base): compare
    # how far each is from its own limit, in units of that limit.
    return slack / abs(limit) if limit else slack


def margin(result: GateResult) -> float:
    """How far a result is inside its gate (< 0: beyond it), relative to each threshold.

    The smallest over the gate's thresholds; a missing, non-numeric or NaN head value is
    infinitely bad, and a result with nothing to measure infinitely safe.
    """
    head = _number(result.new)
    if head is None or math.isnan(head):
        return -math.inf
    gate = result.gate
    slacks: list[float] = []
    if gate.min is not None:
        slacks.append(_relative(head - gate.min, gate.min))
    if gate.max is not None:
        slacks.append(_relative(gate.max - head, gate.max))
    base = _number(result.old)
    if base is not None and not math.isnan(base):
        for threshold, moved in ((gate.max_drop, base - head), (gate.max_rise, head - base)):
            if threshold is None:
                continue
            limit = abs(base) * threshold.value / 100 if threshold.relative else threshold.value
            slacks.append(_relative(limit - moved, limit))
    return min(slacks, default=math.inf)


def _order(result: GateResult) -> tuple[bool, float, str, str]:
    return (result.passed, margin(result), result.metric, result.file or "")


@dataclass(frozen=True)
class SliceSummary:
    """The results of one pattern gate: worst first, with what folds away."""

    gate: Gate
    results: tuple[GateResult, ...]

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def passed(self) -> tuple[GateResult, ...]:
        """The passing slices: folded away in the comment."""
        return tuple(r for r in self.results if r.passed)

    @property
    def worst(self) -> GateResult:
        """The failing slice furthest beyond its threshold; if all pass, the closest to it."""
        return self.results[0]

    @property
    def matched_nothing(self) -> bool:
        return len(self.results) == 1 and self.results[0].gate == self.gate

    def headline(self) -> str:
        """One Markdown line: the verdict of the pattern, naming its worst slice."""
        pattern = code_span(self.gate.metric)
        if self.matched_nothing:
            return f"{pattern} matched no metric"
        worst = self.worst
        slice_text = f"{code_span(worst.metric)} {slice_reason(worst)}"
        if worst.file is not None and len({r.file for r in self.results}) > 1:
            slice_text += f" in {code_span(worst.file)}"
        total = len(self.results)
        if self.failed:
            count = f"{len(self.failed)} of {total} slices fail" if total > 1 else "1 slice fails"
            return f"{pattern}: {count}; worst slice {slice_text}"
        count = f"all {total} slices pass" if total > 1 else "its 1 slice passes"
        return f"{pattern}: {count}; closest slice {slice_text}"


def slice_reason(result: GateResult) -> str:
    """Why a slice passed or failed, without repeating its key or value text from the file.

    Threshold reasons are built of numbers and fixed words only; the others would quote
    repository text, so they are said in words here.
    """
    if result.new is None:
        return "missing at head"
    head = _number(result.new)
    if head is None:
        return "not a number at head"
    if math.isnan(head):
        return "NaN at head"
    return result.reason


def summarise_slices(gates: Sequence[Gate], results: Sequence[GateResult]) -> list[SliceSummary]:
    """One summary per pattern gate, in gate order, from `evaluate_with_slices`' results."""
    summaries = []
    for gate in gates:
        if not is_pattern(gate.metric):
            continue
        own = [
            r
            for r in results
            if r.gate == gate or (isinstance(r.gate, SliceGate) and r.gate.pattern == gate.metric)
        ]
        summaries.append(SliceSummary(gate, tuple(sorted(own, key=_order))))
    return summaries


def _row(result: GateResult) -> str:
    mark = "✅" if result.passed else "❌"
    return (
        f"| {code_span(result.metric, table=True)} | {format_value(result.old)}"
        f" | {format_value(result.new)} | {mark} {slice_reason(result)} |"
    )


def render_slices(summary: SliceSummary, limit: int = SLICE_ROWS) -> str:
    """The headline, the failing slices worst first, and the passing ones folded away."""
    lines = [summary.headline(), ""]
    if summary.matched_nothing:
        return lines[0] + "\n"
    header = ["| Slice | Base | Head | Gate |", "|---|---|---|---|"]
    failed, passed = summary.failed, summary.passed
    shown_failed = failed[:limit]
    if shown_failed:
        lines += header + [_row(r) for r in shown_failed]
        if len(failed) > len(shown_failed):
            lines.append(f"\n… and {len(failed) - len(shown_failed)} more failing slices")
        lines.append("")
    if passed:
        room = max(limit - len(shown_failed), 0)
        noun = "slice" if len(passed) == 1 else "slices"
        lines += [f"<details><summary>{len(passed)} passing {noun}</summary>", ""]
        if room:
            lines += header + [_row(r) for r in passed[:room]]
        if len(passed) > room:
            lines.append(f"\n… and {len(passed) - room} more passing slices")
        lines += ["", "</details>", ""]
    return "\n".join(lines)
