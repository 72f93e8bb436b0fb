"""What an evaluation found: the value the comparison fills and the renderers read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.dvc import DataChange, ParamChange
from bot.core.gates import GateResult
from bot.core.metrics import MetricValue, Stat

Metrics = Mapping[str, Mapping[str, MetricValue]]


@dataclass(frozen=True)
class Baseline:
    """Metrics of one default-branch commit, for the trend."""

    sha: str
    metrics: Metrics


@dataclass(frozen=True)
class Evaluation:
    """Everything a report shows; the I/O code fills it, rendering only reads it.

    `old`/`new` are base/head metrics as `{path: {dotted key: value}}` (with repeats, `new`
    holds the means and `noise` their spread). `trend` is oldest first; only the last 20
    are drawn. `sources` holds head contents of metrics files, to put annotations on the
    right line. `skipped` (a reason) marks a run where nothing relevant changed;
    `override` records who accepted a failing gate and why; `error` says why the evaluation
    itself failed (a command exited non-zero, a metrics file did not parse).
    """

    head_sha: str
    base_sha: str
    old: Metrics = field(default_factory=dict)
    new: Metrics = field(default_factory=dict)
    gates: Sequence[GateResult] = ()
    data_changes: Sequence[DataChange] = ()
    param_changes: Sequence[ParamChange] = ()
    trend: Sequence[Baseline] = ()
    noise: Mapping[str, Stat] | None = None
    log_tail: str = ""
    notes: Sequence[str] = ()
    details_url: str | None = None
    base_ref: str = "main"
    skipped: str | None = None
    override: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    # Gates with `*` (slice gates): their section, rendered, and the metric keys it shows,
    # which the metric table then leaves out.
    slices: str = ""
    sliced: tuple[str, ...] = ()
    # Training curves of dvc.yaml `plots:`, base against head, rendered (folded charts).
    curves: str = ""
    # The PR's `/retrain` matrix: its leaderboard, rendered, and as the data block holds it.
    leaderboard: str = ""
    leaderboard_data: Mapping[str, Any] | None = None
