"""Slice gates and training curves, wired through the comparison into the PR comment."""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.core.comparison import compare
from bot.core.config import parse_config
from bot.core.report import render_comment

BASE, HEAD = "b" * 40, "h" * 40
DVC_YAML = b"plots:\n  - dvclive/plots/metrics/loss.tsv:\n      x: step\n      y: loss\n"


def reader(files: dict[tuple[str, str], bytes]) -> Callable[[str, str], bytes | None]:
    return lambda path, rev: files.get((path, rev))


def per_class(cat: float, dog: float, bird: float) -> bytes:
    data = {
        "accuracy": 0.9,
        "per_class": {n: {"f1": v} for n, v in (("cat", cat), ("dog", dog), ("bird", bird))},
    }
    return json.dumps(data).encode()


CONFIG = parse_config(
    "metrics:\n  files: [metrics.json]\n"
    "gates:\n  per_class.*.f1: {min: 0.7}\n  accuracy: {min: 0.5}\n"
)


def test_the_worst_slice_is_named_and_passing_slices_fold_away() -> None:
    files = {
        ("metrics.json", BASE): per_class(0.8, 0.8, 0.8),
        ("metrics.json", HEAD): per_class(0.61, 0.75, 0.9),
    }
    evaluation = compare(reader(files), CONFIG, ["metrics.json"], BASE, HEAD)
    failed = [g for g in evaluation.gates if not g.passed]
    assert [g.metric for g in failed] == ["per_class.cat.f1"]
    assert set(evaluation.sliced) == {"per_class.cat.f1", "per_class.dog.f1", "per_class.bird.f1"}
    comment = render_comment(evaluation)
    slices = comment[comment.index("#### Slices") :]
    assert "worst slice `per_class.cat.f1` 0.61 < min 0.7" in slices.replace("\\<", "<")
    # The failing slice is shown; the two passing ones are folded.
    shown, folded = slices.split("<details>", 1)
    assert "per_class.cat.f1" in shown and "per_class.dog.f1" not in shown
    assert "2 passing slices" in folded and "per_class.bird.f1" in folded
    # Sliced metrics leave the main table; the data block still has every metric.
    table = comment[: comment.index("#### Slices")]
    assert "per_class.dog.f1" not in table and "`accuracy`" in table
    assert "per_class.dog.f1" in comment[comment.index("<!-- mlgate:data") :]


def test_a_slice_pattern_that_matches_nothing_fails() -> None:
    files = {
        ("metrics.json", BASE): b'{"accuracy": 0.9}',
        ("metrics.json", HEAD): b'{"accuracy": 0.9}',
    }
    evaluation = compare(reader(files), CONFIG, ["metrics.json"], BASE, HEAD)
    [failed] = [g for g in evaluation.gates if not g.passed]
    assert failed.metric == "per_class.*.f1"
    assert "matched no metric" in failed.reason
    assert "matched no metric" in render_comment(evaluation)


def test_training_curves_of_dvc_yaml_plots_appear_base_against_head() -> None:
    base_tsv = b"step\tloss\n" + b"".join(b"%d\t%.3f\n" % (i, 1 / (i + 1)) for i in range(5))
    head_tsv = b"step\tloss\n" + b"".join(b"%d\t%.3f\n" % (i, 0.5 / (i + 1)) for i in range(5))
    files = {
        ("dvc.yaml", HEAD): DVC_YAML,
        ("dvc.yaml", BASE): DVC_YAML,
        ("metrics.json", BASE): b'{"accuracy": 0.9}',
        ("metrics.json", HEAD): b'{"accuracy": 0.9}',
        ("dvclive/plots/metrics/loss.tsv", BASE): base_tsv,
        ("dvclive/plots/metrics/loss.tsv", HEAD): head_tsv,
    }
    config = parse_config("metrics:\n  files: [metrics.json]\n")
    evaluation = compare(reader(files), config, ["dvc.yaml"], BASE, HEAD)
    assert "xychart-beta" in evaluation.curves
    comment = render_comment(evaluation)
    assert evaluation.curves in comment
    assert "0.25" in evaluation.curves and "0.125" in evaluation.curves  # base and head values


def test_no_plots_no_curves() -> None:
    files = {("metrics.json", BASE): b'{"a": 1}', ("metrics.json", HEAD): b'{"a": 2}'}
    config = parse_config("metrics:\n  files: [metrics.json]\n")
    assert compare(reader(files), config, [], BASE, HEAD).curves == ""
