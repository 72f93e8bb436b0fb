"""Finding and reading a revision's metrics as DVC does, on the bot's side and in core."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.comparison import compare, metrics_paths
from bot.core.config import RepoConfig
from bot.core.dvc_interpolation import Context, resolve_stages
from bot.core.dvc_project import RevisionFiles, ignored_paths, load_layout
from bot.core.metrics import diff_metrics
from bot.errors import DvcFileError, MetricsFileError
from bot.runs.local_git import GitRepo
from tests.dvc_fidelity_scenarios import SCENARIOS, Cached, Scenario, build

GOLDENS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "dvc_fidelity" / "goldens.json").read_text()
)["scenarios"]
CONFIG = RepoConfig()


def _in_git_only(scenario: Scenario) -> bool:
    golden = GOLDENS[scenario.name]
    cached = any(isinstance(c, Cached) for files in scenario.commits for c in files.values())
    return not (
        cached or scenario.targets or scenario.no_commits or golden["failed"] or scenario.deliberate
    )


BOT_SCENARIOS = [s for s in SCENARIOS if _in_git_only(s)]


@pytest.mark.parametrize("scenario", BOT_SCENARIOS, ids=[s.name for s in BOT_SCENARIOS])
def test_the_bot_reading_through_a_file_listing_gets_dvcs_numbers(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The bot reads files one by one (GitHub's contents API) and lists them (the Git trees
    API): with no DVC cache at all it gets DVC's numbers wherever the metrics are in git."""
    build(scenario, tmp_path)
    with GitRepo(tmp_path) as repo:
        base, head = repo.resolve(scenario.base), repo.resolve(scenario.head)
        evaluation = compare(
            repo.read, CONFIG, repo.changed(base, head), base, head, list_files=repo.files
        )
    diff = diff_metrics(evaluation.old, evaluation.new, all=scenario.all)
    assert json.dumps(diff, sort_keys=True) == json.dumps(
        GOLDENS[scenario.name]["json"], sort_keys=True
    )


def test_bot_scenarios_cover_subdirectories_templates_and_folders() -> None:
    names = {s.name for s in BOT_SCENARIOS}
    assert {"monorepo", "parametrized[matrix]", "directory[committed]"} <= names


def _files(tree: dict[str, str], listed: bool = True) -> RevisionFiles:
    def read(path: str) -> bytes | None:
        return tree[path].encode() if path in tree else None

    return RevisionFiles(read, sorted(tree) if listed else None)


MONOREPO = {
    "dvc.yaml": "metrics: [top.json]\n",
    "models/a/dvc.yaml": 'metrics: ["${file}"]\n',
    "models/a/params.yaml": "file: a.json\n",
    "models/b/dvc.yaml": "metrics: [../shared.json, reports]\n",
    "models/b/reports/x.json": "{}",
    "models/b/reports/y/z.yaml": "a: 1",
}


def test_every_dvc_yaml_counts_with_a_listing_and_only_the_root_one_without() -> None:
    def read(path: str, rev: str) -> bytes | None:
        assert rev == "sha"
        return MONOREPO[path].encode() if path in MONOREPO else None

    every = metrics_paths(read, CONFIG, "sha", lambda rev: sorted(MONOREPO))
    assert every == [
        "top.json",
        "models/a/a.json",
        "models/shared.json",
        "models/b/reports/x.json",
        "models/b/reports/y/z.yaml",
    ]
    assert metrics_paths(read, CONFIG, "sha") == ["top.json"]


def test_a_broken_dvc_yaml_fails_the_revision_naming_the_file() -> None:
    tree = {"dvc.yaml": "metrics: [m.json]\n", "x/dvc.yaml": "a: [\n"}
    layout = load_layout(_files(tree))
    assert isinstance(layout.failure, DvcFileError)
    assert str(layout.failure).startswith("x/dvc.yaml: invalid YAML")
    # metrics_paths, which the bot classifies changes with, keeps its old answer instead.
    paths = metrics_paths(
        lambda p, _: tree[p].encode() if p in tree else None, CONFIG, "sha", lambda _: sorted(tree)
    )
    assert paths == ["m.json"]


CACHED_STAGE = {
    "dvc.yaml": yaml.safe_dump({"stages": {"eval": {"cmd": "x", "metrics": ["m.json"]}}}),
    "dvc.lock": yaml.safe_dump(
        {
            "schema": "2.0",
            "stages": {"eval": {"cmd": "x", "outs": [{"path": "m.json", "md5": "ab" * 16}]}},
        }
    ),
}


def test_the_bot_names_a_metrics_file_kept_in_dvcs_cache_never_a_silent_empty_diff() -> None:
    def read(path: str, rev: str) -> bytes | None:
        return CACHED_STAGE[path].encode() if path in CACHED_STAGE else None

    evaluation = compare(read, CONFIG, ["dvc.lock"], "base1234567", "head1234567")
    message = (
        "m.json is in DVC's cache, not in git: set `cache: false` for it, "
        "or use `source: run` / `semaphore`"
    )
    assert evaluation.error is None
    assert evaluation.notes == [
        f"At the base (base123): {message}",
        f"At the head (head123): {message}",
    ]
    assert (evaluation.old, evaluation.new) == ({}, {})


def test_the_bot_still_fails_on_a_committed_metrics_file_that_does_not_parse() -> None:
    tree = {"dvc.yaml": "metrics: [m.json]\n", "m.json": "{"}

    def read(path: str, rev: str) -> bytes | None:
        return tree[path].encode() if path in tree else None

    with pytest.raises(MetricsFileError, match=r"^m.json: invalid JSON"):
        compare(read, CONFIG, ["m.json"], "b", "h")


def test_the_base_is_read_with_its_own_dvc_yaml() -> None:
    trees = {
        "b": {"m.json": '{"x": 1}'},
        "h": {"m.json": '{"x": 2}', "dvc.yaml": "metrics: [m.json]\n"},
    }

    def read(path: str, rev: str) -> bytes | None:
        return trees[rev][path].encode() if path in trees[rev] else None

    evaluation = compare(read, CONFIG, ["dvc.yaml", "m.json"], "b", "h")
    assert diff_metrics(evaluation.old, evaluation.new) == {
        "m.json": {"x": {"old": None, "new": 2}}
    }


# ---------------------------------------------------------------------------- templating


def _stage_names(definition: dict[str, Any], data: dict[str, Any] | None = None) -> list[str]:
    stages = resolve_stages(lambda _: None, Context(data or {}), definition, "dvc.yaml")
    return [s.name for s in stages]


def test_foreach_and_matrix_name_their_stages_as_dvc_does() -> None:
    do = {"cmd": "x"}
    assert _stage_names({"s": {"foreach": ["a", 1, True], "do": do}}) == [
        "s@a",
        "s@1",
        "s@true",
    ]
    assert _stage_names({"s": {"foreach": [{"k": 1}, "b"], "do": do}}) == ["s@0", "s@1"]
    assert _stage_names({"s": {"foreach": "${m}", "do": do}}, {"m": {"x": 1, "y": 2}}) == [
        "s@x",
        "s@y",
    ]
    matrix = {"s": {"matrix": {"a": ["p", "q"], "b": [{"z": 1}]}, "cmd": "x"}}
    assert _stage_names(matrix) == ["s@p-b0", "s@q-b0"]


def test_templates_keep_types_alone_and_write_them_in_text() -> None:
    context = Context({"n": 3, "flag": False, "nested": {"list": ["a", "b"]}})
    assert context.resolve_str("${n}", "dvc.yaml", "w") == 3
    assert context.resolve_str("${flag}", "dvc.yaml", "w") is False
    assert context.resolve_str("r${n}-${flag}", "dvc.yaml", "w") == "r3-false"
    assert context.resolve_str("${nested.list[1]}", "dvc.yaml", "w") == "b"
    assert context.resolve_str("lit-\\${n}", "dvc.yaml", "w") == "lit-${n}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${missing}", "Could not find 'missing'"),
        ("${n.deeper}", "Could not find 'n.deeper'"),
        ("${a..b}", "is not a name"),
        ("${}", "is not a name"),
    ],
)
def test_a_template_that_cannot_be_filled_fails_the_file(text: str, reason: str) -> None:
    files = _files({"dvc.yaml": yaml.safe_dump({"vars": [{"n": 1}], "metrics": [text]})})
    failure = load_layout(files).failure
    assert failure is not None and reason in str(failure)


def test_a_matrix_that_multiplies_out_past_the_cap_fails_the_file_instead_of_the_worker() -> None:
    ten = list(range(10))
    definition = {"s": {"matrix": {k: ten for k in "abcde"}, "cmd": "x"}}
    with pytest.raises(
        DvcFileError, match=r"generates 100,000 stages; mlgate reads at most 10,000"
    ):
        resolve_stages(lambda _: None, Context(), definition, "dvc.yaml")


def test_a_list_cannot_be_written_into_a_stage_path() -> None:
    definition = {"s": {"cmd": "x", "metrics": ["${files}"]}}
    with pytest.raises(DvcFileError, match="Cannot interpolate data of type 'list'"):
        resolve_stages(lambda _: None, Context({"files": ["a"]}), definition, "dvc.yaml")


# ---------------------------------------------------------------------------- .dvcignore


def test_dvcignore_follows_gitignore_rules_in_its_own_folder() -> None:
    tree = {
        ".dvcignore": "*.tmp\n!keep.tmp\n/build\nlogs/\n# comment\n",
        "sub/.dvcignore": "only-here.json\n",
        "a.tmp": "",
        "keep.tmp": "",
        "build/x": "",
        "src/build/y": "",
        "x/logs/z": "",
        "logs": "",
        "sub/only-here.json": "",
        "only-here.json": "",
    }
    ignored = ignored_paths(_files(tree).read, sorted(tree))
    assert sorted(ignored) == ["a.tmp", "build/x", "sub/only-here.json", "x/logs/z"]
