from __future__ import annotations

import pytest

from bot.core.changes import PR_FILES_CAP, classify, matches
from bot.core.config import Triggers, default_config


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("data/train.csv.dvc", "**/*.dvc", True),
        ("train.csv.dvc", "**/*.dvc", True),
        ("a/b/c/images.dvc", "**/*.dvc", True),
        ("data/train.csv", "**/*.dvc", False),
        ("dvc.lock", "dvc.lock", True),
        ("sub/dvc.lock", "dvc.lock", True),
        ("src/model/train.py", "src/**", True),
        ("lib/src/train.py", "src/**", False),
        ("params.yaml", "params.yaml", True),
        ("params.yaml.bak", "params.yaml", False),
        ("src/a.py", "src/*.py", True),
        ("src/x/a.py", "src/*.py", False),
        ("models/weights.pt", "models/", True),
        ("sub/models/weights.pt", "models/", True),
        # A leading slash anchors the pattern at the repository root, as in .gitignore.
        ("src/a.py", "/src/**", True),
        ("lib/src/a.py", "/src/**", False),
        ("params.yaml", "/params.yaml", True),
        ("sub/params.yaml", "/params.yaml", False),
        # Only slashes are stripped from the front: a name may start with any letter.
        ("XGBoost/model.json", "XGBoost/", True),
        ("Xdata/train.csv", "Xdata/**", True),
    ],
)
def test_globs_read_as_git_reads_them(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, [pattern]) is expected


def test_default_triggers_sort_data_code_config_and_other() -> None:
    paths = ["data/train.csv.dvc", "dvc.lock", "params.yaml", "README.md", ".github/mlgate.yml"]
    result = classify(paths, default_config().triggers)
    assert result.data == ("data/train.csv.dvc", "dvc.lock")
    assert result.code == ("params.yaml",)
    assert result.other == ("README.md",)
    assert result.config and result.relevant and not result.truncated


def test_a_pr_touching_only_docs_is_not_relevant() -> None:
    result = classify(["README.md", "docs/x.md"], default_config().triggers)
    assert not result.relevant
    assert (result.data, result.code, result.metrics) == ((), (), ())
    assert result.other == ("README.md", "docs/x.md")
    assert not result.config


def test_committed_metrics_files_are_relevant() -> None:
    result = classify(["metrics.json"], Triggers(data=(), code=()), ["metrics.json"])
    assert result.metrics == ("metrics.json",)
    assert (result.data, result.code, result.other) == ((), (), ())
    assert result.relevant


def test_a_list_at_githubs_cap_is_marked_truncated() -> None:
    paths = [f"f{i}.txt" for i in range(PR_FILES_CAP)]
    assert classify(paths, default_config().triggers).truncated


def test_without_configuration_code_params_and_data_of_a_plain_repository_are_considered() -> None:
    triggers = default_config().triggers
    paths = [
        "train.py",
        "src/model/net.py",
        "notebooks/explore.ipynb",
        "params.json",
        "data/train.csv",
        "README.md",
        ".github/workflows/ci.yml",
        "docs/index.md",
    ]
    result = classify(paths, triggers)
    assert result.data == ("data/train.csv",)
    assert result.code == ("train.py", "src/model/net.py", "notebooks/explore.ipynb", "params.json")
    assert result.other == ("README.md", ".github/workflows/ci.yml", "docs/index.md")
    assert not classify(["README.md", "LICENSE", "Makefile"], triggers).relevant
