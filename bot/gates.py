"""Quality gates: per-metric thresholds from `.github/mlgate.yml` and their evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
