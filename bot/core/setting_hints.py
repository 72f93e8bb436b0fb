"""What to add to `.github/mlgate.yml` when a PR is not evaluated or a metric is not found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.core.config import CONFIG_PATH, Triggers
from bot.core.gates import GateResult
from bot.core.report import SUMMARY_LIMIT, text_length


@dataclass(frozen=True)
class SettingHint:
    """One setting to add, with the same example twice: two lines of YAML for a Markdown
    block or a log, one line (flow style, the same YAML) where only a line fits."""

    setting: str
    block: str
    flow: str

    def markdown(self) -> str:
        """The example as a two-line YAML block, after "Add to `.github/mlgate.yml`:"."""
        return f"Add to `{CONFIG_PATH}`:\n\n```yaml\n{self.block}\n```\n"

    def inline(self) -> str:
        """The example as one line of mlgate's Markdown (code spans only)."""
        return f"add to `{CONFIG_PATH}`: `{self.flow}`"


TRIGGERS = SettingHint("triggers", 'triggers:\n  code: ["src/**"]', 'triggers: {code: ["src/**"]}')
DRAFTS = SettingHint("triggers.drafts", "triggers:\n  drafts: true", "triggers: {drafts: true}")
METRICS_FILES = SettingHint(
    "metrics.files",
    "metrics:\n  files: [results/metrics.json]",
    "metrics: {files: [results/metrics.json]}",
)


def _globs(patterns: Sequence[str]) -> str:
    return ", ".join(f"`{p}`" for p in patterns) or "none"


def describe_triggers(triggers: Triggers) -> str:
    """The globs in force, as code spans: `data: …; code: …`."""
    return f"data: {_globs(triggers.data)}; code: {_globs(triggers.code)}"


def not_evaluated(changed: int, triggers: Triggers) -> str:
    """Why a PR is not evaluated, on one line: the triggers in force and the setting to add."""
    return (
        f"No changed file matches the triggers ({changed} files changed). In force: "
        f"{describe_triggers(triggers)}. To evaluate such a PR, {TRIGGERS.inline()}"
    )


def not_evaluated_markdown(changed: int, triggers: Triggers) -> str:
    """The same for a check-run summary or a log: the example as a two-line YAML block."""
    return (
        f"No changed file matches the triggers ({changed} files changed).\n\n"
        f"The triggers in force: {describe_triggers(triggers)}. To evaluate PRs that change "
        f"other paths, list them under `{TRIGGERS.setting}`. {TRIGGERS.markdown()}"
    )


def draft_markdown() -> str:
    """Why a draft is not evaluated, with the setting that evaluates drafts too."""
    return (
        "Draft PRs are evaluated once marked ready for review (or with "
        f"`{DRAFTS.setting}: true`). {DRAFTS.markdown()}"
    )


def gate_hints(results: Iterable[GateResult]) -> list[SettingHint]:
    """The settings that would let gated metrics be found: `metrics.files` when a gate found
    its metric in no file."""
    return [METRICS_FILES] if any(r.file is None for r in results) else []


def summary_with_hints(summary: str, results: Iterable[GateResult]) -> str:
    """A check-run summary followed by the two-line example of each setting that would find a
    gated metric, when it still fits GitHub's summary limit."""
    hints = "".join(f"\n{hint.markdown()}" for hint in gate_hints(results))
    if not hints or text_length(summary) + text_length(hints) > SUMMARY_LIMIT:
        return summary
    return summary + hints
