"""Quality gates: per-metric thresholds from `.github/mlgate.yml` and their evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.metrics import MetricValue, Stat, format_value

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Threshold:
    """An allowed change: absolute (`0.01`) or relative to the base value (`5%` -> 5.0)."""

    value: float
    relative: bool = False


@dataclass(frozen=True)
class Gate:
    """The gate of one metric, as `gates.<metric>` in the repository configuration."""

    metric: str
    direction: Direction = "higher"
    min: float | None = None
    max: float | None = None
    max_drop: Threshold | None = None
    max_rise: Threshold | None = None


Verdict = Literal["passed", "failed", "no_gates"]


@dataclass(frozen=True)
class GateResult:
    """One gate applied to one metric in one metrics file.

    `file` is None when the metric was found in no metrics file at all. `within_noise` is
    True when repeats were run and |head - base| is below the spread between them.
    """

    metric: str
    file: str | None
    passed: bool
    reason: str
    gate: Gate
    within_noise: bool = False
    old: MetricValue | None = None
    new: MetricValue | None = None


def _close(a: float, b: float) -> bool:
    # 0.87 - 0.86 == 0.010000000000000009: a drop equal to the limit must not fail.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _percent(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


def _limit_text(threshold: Threshold) -> str:
    return _percent(threshold.value) if threshold.relative else format_value(threshold.value)


def _number(value: MetricValue | None) -> int | float | None:
    # Kept as int when it is one, so an integer metric reads "rise 3", not "rise 3.0".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _movement(
    word: str,
    name: str,
    amount: float,
    base: float,
    threshold: Threshold,
) -> tuple[bool, str]:
    """Whether a drop/rise of `amount` (> 0 means it happened) exceeds its threshold."""
    if amount <= 0:
        return True, f"no {word}"
    if threshold.relative:
        limit = abs(base) * threshold.value / 100
        shown = _percent(amount / abs(base) * 100) if base else f"{format_value(amount)} from 0"
    else:
        limit = threshold.value
        shown = format_value(amount)
    exceeded = amount > limit and not _close(amount, limit)
    sign = ">" if exceeded else "≤"
    return not exceeded, f"{word} {shown} {sign} {name} {_limit_text(threshold)}"


def _check(
    gate: Gate,
    key: str,
    file: str,
    old: MetricValue | None,
    new: MetricValue | None,
    stat: Stat | None,
) -> GateResult:
    def result(passed: bool, reason: str, noise: bool = False) -> GateResult:
        return GateResult(key, file, passed, reason, gate, noise, old, new)

    if new is None:
        return result(False, f"{key} missing at head (expected in {file})")
    head = _number(new)
    if head is None:
        return result(False, f"{key} is {new!r} at head, not a number")
    if math.isnan(head):
        return result(False, f"{key} is NaN at head")
    base = _number(old)
    if base is not None and math.isnan(base):
        base = None  # no change can be measured from NaN: checked as if the metric were new
    noise = stat is not None and base is not None and stat.within_noise(head - base)

    failures: list[str] = []
    passes: list[str] = []
    if gate.min is not None:
        if head < gate.min and not _close(head, gate.min):
            failures.append(f"{format_value(new)} < min {format_value(gate.min)}")
        else:
            passes.append(f"{format_value(new)} ≥ min {format_value(gate.min)}")
    if gate.max is not None:
        if head > gate.max and not _close(head, gate.max):
            failures.append(f"{format_value(new)} > max {format_value(gate.max)}")
        else:
            passes.append(f"{format_value(new)} ≤ max {format_value(gate.max)}")
    movements = [
        ("drop", "max_drop", -1, gate.max_drop),
        ("rise", "max_rise", 1, gate.max_rise),
    ]
    for word, name, sign, threshold in movements:
        if threshold is None:
            continue
        if base is None:
            passes.append(f"no base value for {name}")
            continue
        ok, text = _movement(word, name, sign * (head - base), base, threshold)
        if ok:
            passes.append(text)
        elif noise and stat is not None:
            # A change smaller than the spread between repeats is not evidence of a drop.
            passes.append(f"{text}, but within noise (±{format_value(stat.spread)})")
        else:
            failures.append(text)
    if failures:
        return result(False, "; ".join(failures), noise)
    return result(True, "; ".join(passes) or "no threshold set", noise)


_METRICS_EXTENSIONS = (".json", ".yaml", ".yml", ".toml")


def _split_key(key: str, files: set[str]) -> tuple[str | None, str]:
    """`path:metric` → (path, metric) when the path is a metrics file; else (None, key)."""
    for index, char in enumerate(key):
        if char == ":" and key[:index] in files:
            return key[:index], key[index + 1 :]
    path, sep, metric = key.partition(":")
    if sep and metric and path.lower().endswith(_METRICS_EXTENSIONS):
        return path, metric  # a file that exists at neither commit
    return None, key


def evaluate_gates(
    gates: Sequence[Gate],
    old: Mapping[str, Mapping[str, MetricValue]],
    new: Mapping[str, Mapping[str, MetricValue]],
    noise: Mapping[str, Stat] | None = None,
) -> list[GateResult]:
    """Apply each gate to base (`old`) and head (`new`) metrics, `{path: {key: value}}`.

    A gate named `metric` applies in every metrics file that has that key at base or head;
    `path:metric` only in that file. A gated metric absent at head fails, naming the file(s)
    and key it was expected in. `noise` maps `path:metric` or `metric` to the head's spread
    over repeats: a max_drop/max_rise breach smaller than that spread passes, marked as
    within noise; min and max always hold. `max_drop` bounds a decrease and `max_rise` an
    increase whatever the direction; `direction` says which way is better (see `improved`).
    """
    files = set(old) | set(new)
    results: list[GateResult] = []
    for gate in gates:
        path, key = _split_key(gate.metric, files)
        if path is not None:
            targets = [path]
        else:
            targets = sorted(f for f in files if key in new.get(f, {}) or key in old.get(f, {}))
        if not targets:
            # Each names the setting that would find it (its example is in the report's notes).
            reason = (
                f"{key} not found at head (looked in {', '.join(sorted(files))}); "
                "name its file under metrics.files"
                if files
                else f"{key} not found: no metrics files at base or head; "
                "name yours under metrics.files"
            )
            results.append(GateResult(key, None, False, reason, gate))
            continue
        for file in targets:
            stat = None
            if noise is not None:
                stat = noise.get(f"{file}:{key}", noise.get(key))
            base, head = old.get(file, {}).get(key), new.get(file, {}).get(key)
            results.append(_check(gate, key, file, base, head, stat))
    return results


def improved(gate: Gate, change: float) -> bool:
    """Whether a change is for the better in the gate's direction (higher unless `lower`)."""
    return change < 0 if gate.direction == "lower" else change > 0


def verdict(results: Sequence[GateResult]) -> Verdict:
    """`failed` if any gate failed, `passed` if all passed, `no_gates` if none applied."""
    if not results:
        return "no_gates"
    return "passed" if all(r.passed for r in results) else "failed"
