"""Production monitoring: judge live metrics uploads against gates and decide on the issue.

`window` failing uploads in a row open the environment's issue (or update it while open);
`window` passing uploads in a row close it. In between, an open issue is kept up to date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.gates import Gate, GateResult, evaluate_gates
from bot.core.metrics import MetricValue

Metrics = Mapping[str, Mapping[str, MetricValue]]
Action = Literal["open", "update", "close", "none"]
ISSUE_LABEL = "mlgate:monitor"


def marker(env: str) -> str:
    """The hidden line that finds an environment's issue among all of a repository's."""
    return f"<!-- mlgate:monitor {env} -->"


@dataclass(frozen=True)
class Observation:
    """One upload of live metrics: when, which deployed commit, and the metrics."""

    at: float
    sha: str
    metrics: Metrics


@dataclass(frozen=True)
class Judged:
    """An observation held to the monitor's gates (relative ones against `baseline`)."""

    observation: Observation
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)


def judge(
    observations: Sequence[Observation], gates: Sequence[Gate], baseline: Metrics | None
) -> list[Judged]:
    """Each observation's gate results. `max_drop`/`max_rise` compare with the deployed
    commit's own evaluation (`baseline`) when mlgate has it; without it they cannot fail."""
    judged = []
    for observation in observations:
        base = baseline if baseline is not None else observation.metrics
        results = evaluate_gates(gates, base, observation.metrics)
        judged.append(Judged(observation, tuple(results)))
    return judged


@dataclass(frozen=True)
class MonitorDecision:
    """What to do about the environment's issue after the newest upload."""

    action: Action
    breached: bool  # the newest `window` uploads all failed
    recovered: bool  # the newest `window` uploads all passed
    retrain: bool  # start a retrain (on_breach: retrain, and the breach is new)


def decide(
    judged: Sequence[Judged], window: int, issue_open: bool, on_breach: Sequence[str]
) -> MonitorDecision:
    """The newest `window` judgements (oldest first in `judged`) decide."""
    recent = judged[-window:]
    full = len(recent) == window
    breached = full and all(not j.passed for j in recent)
    recovered = full and all(j.passed for j in recent)
    if breached:
        action: Action = "update" if issue_open else ("open" if "issue" in on_breach else "none")
        return MonitorDecision(action, True, False, not issue_open and "retrain" in on_breach)
    if recovered and issue_open:
        return MonitorDecision("close", False, True, False)
    return MonitorDecision("update" if issue_open else "none", False, recovered, False)
