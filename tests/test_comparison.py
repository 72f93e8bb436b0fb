"""The comparison of a head with its base, read from files held in memory per revision."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bot.core.comparison import (
    RunOutcome,
    compare,
    compare_revisions_metrics,
    data_files,
    metrics_paths,
    not_found_note,
    read_metrics,
)
from bot.core.config import parse_config
from bot.core.gates import Gate, GateResult
from bot.core.metrics import Stat
from bot.errors import DvcFileError, MetricsFileError


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


BROKEN = {
    "base1234567": {"b.json": '{"acc": 0.9}'},
    "head7654321": {"a.json": "{", "b.json": '{"acc": 0.8}'},
}
TWO_FILES = parse_config(
    "version: 1\nmetrics:\n  files: [a.json, b.json]\ngates:\n  acc: {min: 0.5}\n"
)


def test_tolerant_reading_names_each_sides_problem_and_keeps_the_files_that_load() -> None:
    comparison = compare_revisions_metrics(
        reader(BROKEN), TWO_FILES, [], "base1234567", "head7654321", tolerant=True
    )
    evaluation = comparison.evaluation
    assert evaluation.notes == [
        "At the base (base123): a.json: does not exist at this revision",
        "At the head (head765): a.json: invalid JSON: Expecting property name enclosed in"
        " double quotes: line 1 column 2 (char 1)",
    ]
    assert (evaluation.old, evaluation.new) == ({"b.json": {"acc": 0.9}}, {"b.json": {"acc": 0.8}})
    assert evaluation.sources == {"b.json": '{"acc": 0.8}'}
    assert (evaluation.base_ref, evaluation.head_sha, evaluation.base_sha) == (
        "main",
        "head7654321",
        "base1234567",
    )
    assert comparison.head.paths == ["a.json", "b.json"]
    assert sorted(comparison.head.problems) == ["a.json"]
    assert sorted(comparison.base.problems) == ["a.json"]
    assert [(r.metric, r.passed) for r in evaluation.gates] == [("acc", True)]


def test_a_broken_committed_metrics_file_fails_the_comparison_unless_tolerant() -> None:
    with pytest.raises(MetricsFileError) as raised:
        compare(reader(BROKEN), TWO_FILES, [], "base1234567", "head7654321")
    assert raised.value.path == "a.json"
    swapped = {"base1234567": BROKEN["head7654321"], "head7654321": BROKEN["base1234567"]}
    with pytest.raises(MetricsFileError):
        compare(reader(swapped), TWO_FILES, [], "base1234567", "head7654321")


def test_a_broken_lock_fails_the_comparison_unless_tolerant_where_it_is_a_note() -> None:
    read = reader({"b": {"dvc.lock": "schema: 9\n"}, "h": {"dvc.lock": "schema: 9\n"}})
    config = parse_config("version: 1\n")
    with pytest.raises(DvcFileError):
        compare(read, config, ["dvc.lock"], "b", "h")
    evaluation = compare_revisions_metrics(
        read, config, ["dvc.lock"], "b", "h", tolerant=True
    ).evaluation
    assert evaluation.notes == [
        "Data and parameter changes are not shown: dvc.lock: unsupported schema 9; expected '2.0'"
    ]
    assert (evaluation.data_changes, evaluation.param_changes) == ([], [])


def test_a_failed_measurement_gives_only_its_error_and_log() -> None:
    def measure() -> RunOutcome:
        return RunOutcome({}, None, "the log", failure="exit 1")

    read = reader({"b": {"metrics.json": '{"acc": 1}'}, "h": {"metrics.json": '{"acc": 2}'}})
    comparison = compare_revisions_metrics(
        read, parse_config("version: 1\n"), [], "b", "h", base_ref="dev", measure=measure
    )
    evaluation = comparison.evaluation
    assert (evaluation.error, evaluation.log_tail, evaluation.base_ref) == (
        "exit 1",
        "the log",
        "dev",
    )
    assert (evaluation.head_sha, evaluation.base_sha) == ("h", "b")
    assert comparison.base.metrics == {"metrics.json": {"acc": 1}}
    assert comparison.head.metrics == {"metrics.json": {"acc": 2}}


def test_a_measured_head_brings_its_sources_and_a_baseline_replaces_the_base_files() -> None:
    def measure() -> RunOutcome:
        return RunOutcome({"metrics.json": {"acc": 3}}, None, "", sources={"metrics.json": "x"})

    read = reader({"b": {"metrics.json": "{"}, "h": {"metrics.json": '{"acc": 2}'}})
    comparison = compare_revisions_metrics(
        read,
        parse_config("version: 1\n"),
        [],
        "b",
        "h",
        baseline={"metrics.json": {"acc": 1}},
        measure=measure,
    )
    evaluation = comparison.evaluation
    assert (evaluation.old, evaluation.new) == (
        {"metrics.json": {"acc": 1}},
        {"metrics.json": {"acc": 3}},
    )
    assert evaluation.sources == {"metrics.json": "x"}
    assert comparison.base.paths == ()  # the broken base file was never read


def test_outputs_and_params_of_a_changed_lock_follow_the_stage_wdir() -> None:
    lock = (
        "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    params:\n      params.yaml:\n"
        "        lr: 0.1\n    outs:\n    - {path: model.pkl, md5: aaa, size: 10}\n"
    )
    changed = lock.replace("0.1", "0.2").replace("aaa", "bbb").replace("10}", "12}")
    stages = "stages:\n  train: {cmd: x, wdir: w}\n"
    read = reader(
        {
            "b": {"sub/dvc.lock": lock, "sub/dvc.yaml": stages, "metrics.json": '{"acc": 1}'},
            "h": {"sub/dvc.lock": changed, "sub/dvc.yaml": stages, "metrics.json": '{"acc": 1}'},
        }
    )
    evaluation = compare(read, parse_config("version: 1\n"), ["sub/dvc.lock"], "b", "h")
    assert [(c.path, c.kind, c.size_delta) for c in evaluation.data_changes] == [
        ("sub/w/model.pkl", "modified", 2)
    ]
    # The params file is the stage's, in its wdir, as `dvc params diff` names it.
    assert [(p.file, p.key, p.old, p.new) for p in evaluation.param_changes] == [
        ("sub/w/params.yaml", "lr", 0.1, 0.2)
    ]
    assert evaluation.notes == []
    assert data_files(["a/dvc.lock", "x.dvc", "dvc.lock.bak", "b/params.yaml", "dvc.lock"]) == [
        "a/dvc.lock",
        "a/dvc.yaml",
        "dvc.lock",
        "dvc.yaml",
        "x.dvc",
    ]


def test_without_dvc_yaml_the_common_metrics_files_that_exist_are_read() -> None:
    files = {"metrics.json": '{"a": 1}', "reports/metrics.json": '{"b": 2}', "other.json": "{}"}
    read = reader({"b": files, "h": files})
    config = parse_config("version: 1\n")
    assert metrics_paths(read, config, "h") == ["metrics.json", "reports/metrics.json"]
    listed = metrics_paths(read, config, "h", list_files=lambda rev: sorted(files))
    assert listed == ["metrics.json", "reports/metrics.json"]
    assert metrics_paths(read, config, "h", list_files=lambda rev: ["metrics.json"]) == [
        "metrics.json"
    ]
    assert metrics_paths(read, TWO_FILES, "h") == ["a.json", "b.json"]


PLOTS = "plots:\n  - dvclive/plots/metrics:\n      x: step\n"
CURVES_BASE = {
    "dvc.yaml": PLOTS,
    "dvclive/plots/metrics/acc.tsv": "step\tacc\n0\t0.5\n1\t0.6\n",
    "dvclive/plots/metrics/loss.tsv": "step\tloss\n0\t1.0\n1\t0.5\n",
}
CURVES_HEAD = {
    "dvc.yaml": PLOTS,
    "dvclive/plots/metrics/acc.tsv": "step\tacc\n0\t0.7\n1\t0.8\n",
    "dvclive/plots/metrics/loss.tsv": "step\tloss\n0\t0.9\n1\t0.3\n2\t0.2\n",
}


def test_the_training_curves_draw_each_file_of_a_plots_folder_base_against_head() -> None:
    read = reader({"base1234567": CURVES_BASE, "head7654321": CURVES_HEAD})
    listings = {"base1234567": sorted(CURVES_BASE), "head7654321": sorted(CURVES_HEAD)}
    config = parse_config("version: 1\n")
    evaluation = compare(
        read, config, [], "base1234567", "head7654321", list_files=listings.__getitem__
    )
    charts = evaluation.curves.split("```mermaid\n")
    assert charts[0] == (
        "<details><summary>Training curves (2 plots)</summary>\n\n"
        "**`dvclive/plots/metrics/acc.tsv` `acc`** — grey: base `base123`, blue: head `head765`\n\n"
    )
    assert '    line "base" [0.5, 0.6]\n    line "head" [0.7, 0.8]\n' in charts[1]
    assert '    x-axis "step" ["0", "1", "2"]\n' in charts[2]
    assert '    line "base" [1, 0.5, 0.5]\n    line "head" [0.9, 0.3, 0.2]\n' in charts[2]
    assert charts[2].endswith(
        "- base has steps 0–1 only; its line is held flat beyond them\n\n</details>\n"
    )
    # A head-only folder (the base lists none of its files) still draws the head.
    only_head = compare(
        read,
        config,
        [],
        "base1234567",
        "head7654321",
        list_files=lambda rev: listings[rev] if rev == "head7654321" else ["dvc.yaml"],
    )
    assert "(2 plots)" in only_head.curves
    # Without a listing the folder cannot be expanded; without plots there is nothing.
    assert compare(read, config, [], "base1234567", "head7654321").curves == ""
    plain = reader({"b": {"dvc.yaml": "stages: {}\n"}, "h": {"dvc.yaml": "stages: {}\n"}})
    assert compare(plain, config, [], "b", "h", list_files=lambda rev: ["dvc.yaml"]).curves == ""
    assert compare(reader({"b": {}, "h": {}}), config, [], "b", "h").curves == ""


def test_the_plots_dvc_yaml_cannot_read_are_listed_under_the_curves() -> None:
    plots = "plots:\n  - 5\n  - dvclive/plots/metrics:\n      x: step\n"
    base, head = dict(CURVES_BASE, **{"dvc.yaml": plots}), dict(CURVES_HEAD, **{"dvc.yaml": plots})
    read = reader({"b": base, "h": head})
    listings = {"b": sorted(base), "h": sorted(head)}
    config = parse_config("version: 1\n")
    curves = compare(read, config, [], "b", "h", list_files=listings.__getitem__).curves
    assert curves.startswith("<details><summary>Training curves (2 plots)</summary>")
    assert curves.endswith(
        "Plots that could not be read:\n\n"
        "- `dvc.yaml`: `plots[0]` is neither a path nor a one-key mapping\n\n</details>\n"
    )
    # Nothing to draw, only a problem: the problem is still shown.
    broken = reader({"b": {"dvc.yaml": "plots: 7\n"}, "h": {"dvc.yaml": "plots: 7\n"}})
    assert compare(broken, config, [], "b", "h").curves == (
        "<details><summary>Training curves (0 plots)</summary>\n\n"
        "Plots that could not be read:\n\n"
        "- `dvc.yaml`: `plots` is not a list of plots\n\n</details>\n"
    )


def test_read_metrics_reads_the_files_that_exist() -> None:
    files = {"a.json": b'{"acc": 0.5}', "b.yaml": b"loss: 2\n"}
    assert read_metrics(files.get, ["a.json", "missing.json", "b.yaml"]) == {
        "a.json": {"acc": 0.5},
        "b.yaml": {"loss": 2},
    }
    with pytest.raises(MetricsFileError, match=r"^a\.json: "):
        read_metrics({"a.json": b"{"}.get, ["a.json"])


def test_a_dvc_file_without_dvc_yaml_keeps_the_common_files_and_an_empty_dvc_yaml_does_not() -> (
    None
):
    files = {
        "data.dvc": f"outs:\n- md5: {'a' * 32}\n  path: data\n",
        "metrics.json": '{"acc": 0.9}',
    }
    read = reader({"b": files, "h": files})
    config = parse_config("version: 1\n")
    listed = compare(read, config, [], "b", "h", list_files=lambda rev: sorted(files))
    assert listed.new == {"metrics.json": {"acc": 0.9}}
    assert metrics_paths(read, config, "h", list_files=lambda rev: sorted(files)) == [
        "metrics.json"
    ]
    # A dvc.yaml alone says what the metrics are, even when it declares none.
    with_pipeline = dict(files, **{"dvc.yaml": "stages:\n  train: {cmd: x}\n"})
    read = reader({"b": with_pipeline, "h": with_pipeline})
    evaluation = compare(read, config, [], "b", "h", list_files=lambda rev: sorted(with_pipeline))
    assert (evaluation.old, evaluation.new) == ({}, {})
    assert metrics_paths(read, config, "h") == []


def test_configured_files_are_read_even_when_a_dvc_yaml_does_not_load() -> None:
    files = {"dvc.yaml": "stages: [", "m.json": '{"acc": 0.9}'}
    read = reader({"b": files, "h": files})
    configured = parse_config("version: 1\nmetrics:\n  files: [m.json]\n")
    comparison = compare_revisions_metrics(read, configured, [], "b", "h")
    assert comparison.head.metrics == {"m.json": {"acc": 0.9}}
    assert (comparison.head.error, comparison.head.paths) == (None, ["m.json"])
    # Without metrics.files the revision's metrics do not load at all, as in DVC.
    plain = compare_revisions_metrics(
        read, parse_config("version: 1\n"), [], "b", "h", tolerant=True
    )
    assert isinstance(plain.head.error, DvcFileError)
    assert plain.head.metrics == {}
    assert plain.evaluation.notes[0].startswith(
        "At the base (b): its DVC files do not load, so no metrics are read: dvc.yaml: "
    )
    # A configured folder is expanded to its files when the DVC files load.
    folder = {"eval/a.json": '{"acc": 1}', "eval/b.json": '{"loss": 2}'}
    read = reader({"b": folder, "h": folder})
    configured = parse_config("version: 1\nmetrics:\n  files: [eval]\n")
    expanded = compare_revisions_metrics(
        read, configured, [], "b", "h", list_files=lambda rev: sorted(folder)
    )
    assert expanded.head.metrics == {"eval/a.json": {"acc": 1}, "eval/b.json": {"loss": 2}}
    assert expanded.base.metrics == expanded.head.metrics


def test_metrics_paths_of_a_broken_revision_fall_back_to_the_root_dvc_yaml() -> None:
    files = {
        "dvc.yaml": "metrics:\n  - m.json\n",
        "sub/dvc.yaml": "stages: [",
        "m.json": "{}",
    }
    read = reader({"h": files})
    config = parse_config("version: 1\n")
    assert metrics_paths(read, config, "h", list_files=lambda rev: sorted(files)) == ["m.json"]
    no_root = {"sub/dvc.yaml": "stages: [", "metrics.json": "{}"}
    read = reader({"h": no_root})
    assert metrics_paths(read, config, "h", list_files=lambda rev: sorted(no_root)) == []


def test_both_revisions_read_listed_folders_and_dvc_s_cache() -> None:
    def side(md5: str) -> dict[str, str]:
        return {"metrics.json.dvc": f"outs:\n- md5: {md5}\n  path: metrics.json\n  hash: md5\n"}

    base_md5, head_md5 = "a" * 32, "b" * 32
    read = reader({"b": side(base_md5), "h": side(head_md5)})
    cache = {
        f"files/md5/aa/{base_md5[2:]}": b'{"acc": 0.9}',
        f"files/md5/bb/{head_md5[2:]}": b'{"acc": 0.8}',
    }
    listings = {"b": ["metrics.json.dvc"], "h": ["metrics.json.dvc"]}
    config = parse_config("version: 1\ngates:\n  acc: {max_drop: 0.05}\n")
    comparison = compare_revisions_metrics(
        read, config, [], "b", "h", list_files=listings.__getitem__, cache=cache.get
    )
    assert comparison.base.metrics == {"metrics.json": {"acc": 0.9}}
    assert comparison.head.metrics == {"metrics.json": {"acc": 0.8}}
    evaluation = compare(
        read, config, [], "b", "h", list_files=listings.__getitem__, cache=cache.get
    )
    assert (evaluation.old, evaluation.new) == (comparison.base.metrics, comparison.head.metrics)
    assert [r.passed for r in evaluation.gates] == [False]
    assert evaluation.sources == {"metrics.json": '{"acc": 0.8}'}
    assert (evaluation.log_tail, evaluation.base_ref, evaluation.notes) == ("", "main", [])


def test_compare_passes_on_the_base_ref_and_the_baseline() -> None:
    read = reader({"b": {"metrics.json": '{"acc": 0.5}'}, "h": {"metrics.json": '{"acc": 0.8}'}})
    config = parse_config("version: 1\n")
    evaluation = compare(
        read, config, [], "b", "h", base_ref="dev", baseline={"metrics.json": {"acc": 0.7}}
    )
    assert (evaluation.base_ref, evaluation.old) == ("dev", {"metrics.json": {"acc": 0.7}})


def test_a_gated_metric_in_no_existing_file_names_the_files_looked_for() -> None:
    config = parse_config("version: 1\nmetrics:\n  files: [m.json]\ngates:\n  acc: {min: 0.5}\n")
    evaluation = compare(reader({"b": {}, "h": {}}), config, [], "b", "h")
    assert evaluation.notes[-1].startswith(
        "Gated `acc` found in no metrics file: none of `m.json` exists at base or head. "
    )


def test_pattern_gates_are_summarised_per_slice() -> None:
    config = parse_config("version: 1\ngates:\n  per_class.*.f1: {min: 0.7}\n")
    old = '{"per_class": {"cat": {"f1": 0.8}, "dog": {"f1": 0.8}}}'
    new = '{"per_class": {"cat": {"f1": 0.6}, "dog": {"f1": 0.9}}}'
    read = reader({"b": {"metrics.json": old}, "h": {"metrics.json": new}})
    evaluation = compare(read, config, [], "b", "h")
    assert evaluation.sliced == ("per_class.cat.f1", "per_class.dog.f1")
    assert evaluation.slices.startswith(
        "`per_class.*.f1`: 1 of 2 slices fail; worst slice `per_class.cat.f1` 0.6 < min 0.7\n\n"
        "| Slice | Base | Head | Gate |\n|---|---|---|---|\n"
        "| `per_class.cat.f1` | 0.8 | 0.6 | ❌ 0.6 < min 0.7 |\n"
    )
    # Two pattern gates: each one's summary, in gate order, a blank line apart.
    both = parse_config(
        "version: 1\ngates:\n  per_class.*.f1: {min: 0.7}\n  per_class.*.f2: {min: 0.1}\n"
    )
    second = parse_config("version: 1\ngates:\n  per_class.*.f2: {min: 0.1}\n")
    joined = compare(read, both, [], "b", "h").slices
    assert joined == evaluation.slices + "\n" + compare(read, second, [], "b", "h").slices
    assert joined.endswith("\n`per_class.*.f2` matched no metric\n")
    plain = compare(read, parse_config("version: 1\ngates:\n  acc: {min: 1}\n"), [], "b", "h")
    assert (plain.slices, plain.sliced) == ("", ())


def test_a_configured_file_missing_beside_a_broken_dvc_yaml_is_named_missing() -> None:
    files = {"dvc.yaml": "stages: [", "m.json": '{"acc": 0.9}'}
    read = reader({"b": files, "h": files})
    configured = parse_config("version: 1\nmetrics:\n  files: [m.json, gone.json]\n")
    head = compare_revisions_metrics(read, configured, [], "b", "h", tolerant=True).head
    assert head.metrics == {"m.json": {"acc": 0.9}}
    assert [str(problem) for problem in head.problems.values()] == [
        "gone.json: does not exist at this revision"
    ]


def test_a_broken_dvc_yaml_beside_a_changed_lock_is_named_in_the_note() -> None:
    lock = "schema: '2.0'\nstages: {}\n"
    files = {"sub/dvc.lock": lock, "sub/dvc.yaml": "stages: [", "metrics.json": "{}"}
    read = reader({"b": files, "h": files})
    notes = compare_revisions_metrics(
        read, parse_config("version: 1\n"), ["sub/dvc.lock"], "b", "h", tolerant=True
    ).evaluation.notes
    assert notes[0].startswith("Data and parameter changes are not shown: sub/dvc.yaml: invalid")
