"""The comparison of a head with its base, read from files held in memory per revision."""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.core.comparison import RunOutcome, compare, not_found_note
from bot.core.config import parse_config
from bot.core.gates import Gate, GateResult
from bot.core.metrics import Stat


def reader(revisions: dict[str, dict[str, str]]) -> Callable[[str, str], bytes | None]:
    """Each revision's files as text, read as the bot reads them (None: not there)."""

    def read(path: str, rev: str) -> bytes | None:
        content = revisions[rev].get(path)
        return None if content is None else content.encode()

    return read


def test_a_metrics_file_only_at_the_base_is_named_among_the_files_read() -> None:
    config = parse_config(
        "version: 1\nmetrics:\n  files: [old.json, new.json]\ngates:\n  f1: {min: 0.5}\n"
    )
    read = reader(
        {"b": {"old.json": json.dumps({"acc": 0.9})}, "h": {"new.json": json.dumps({"acc": 0.8})}}
    )
    evaluation = compare(read, config, ["new.json"], "b", "h")
    assert evaluation.old == {"old.json": {"acc": 0.9}}
    assert evaluation.new == {"new.json": {"acc": 0.8}}
    # Both files count as read, the one only at the base too.
    assert evaluation.notes[-1].startswith(
        "Gated `f1` found in none of the metrics files read (`new.json`, `old.json`). "
    )
    assert [(r.metric, r.file, r.passed) for r in evaluation.gates] == [("f1", None, False)]


def test_the_noise_of_a_measured_head_reaches_the_gates() -> None:
    config = parse_config("version: 1\ngates:\n  acc: {max_drop: 0.01}\n")
    read = reader({"b": {"metrics.json": '{"acc": 0.90}'}, "h": {"metrics.json": '{"acc": 0.85}'}})
    noise = {"acc": Stat(mean=0.85, spread=0.1, n=3)}

    def measure() -> RunOutcome:
        return RunOutcome({"metrics.json": {"acc": 0.85}}, noise, "log")

    evaluation = compare(read, config, [], "b", "h", measure=measure)
    assert evaluation.noise == noise
    [result] = evaluation.gates
    assert result.passed is True
    assert result.within_noise is True
    assert result.reason == "drop 0.05 > max_drop 0.01, but within noise (±0.1)"
    assert evaluation.log_tail == "log"
    # Without the noise, the same drop fails.
    quiet = compare(read, config, [], "b", "h")
    assert [r.passed for r in quiet.gates] == [False]


def test_the_note_names_the_files_read_else_those_looked_for_else_how_they_are_found() -> None:
    missing = [GateResult("f1", None, False, "not found", Gate("f1"))]
    found = [GateResult("acc", "m.json", True, "ok", Gate("acc"))]
    assert not_found_note(found, ["m.json"], []) is None
    read_note = not_found_note(missing, ["a.json", "b.json"], ["c.json"])
    assert read_note is not None
    assert read_note.startswith(
        "Gated `f1` found in none of the metrics files read (`a.json`, `b.json`). "
    )
    looked = not_found_note(missing, [], ["c.json", "d.json"])
    assert looked is not None
    assert looked.startswith(
        "Gated `f1` found in no metrics file: none of `c.json`, `d.json` exists at base or head. "
    )
    neither = not_found_note(missing, [], [])
    assert neither is not None
    assert neither.startswith(
        "Gated `f1` found in no metrics file: `dvc.yaml` declares none (without a `dvc.yaml`,"
        " mlgate reads `metrics.json`, `metrics.yaml`, `eval/metrics.json`,"
        " `reports/metrics.json` where they exist). To read another file, "
    )
