"""DVC project layouts, each built as a real git repository, for `dvc metrics diff` fidelity.

Shared by tests/test_dvc_fidelity.py, which runs `mlgate report --json` on each, and
bench/record_dvc_goldens.py, which runs DVC itself on the very same repositories and
records its output as the goldens. Names are those of DVC's own tests where one exists
(tests/func/metrics/test_diff.py and test_show.py in iterative/dvc); a `show` test becomes
a diff from a commit before its metrics appeared.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Cached:
    """A file (text) or folder (`{relative path: text}`) that DVC keeps in its cache.

    The builder writes it to the working tree and to `.dvc/cache`, never to git; the DVC
    file that names it (`dvc_add`, `lock`) carries its hash. `legacy` is DVC 2's layout.
    """

    content: str | Mapping[str, str]
    legacy: bool = False


Files = Mapping[str, "str | Cached | None"]  # None removes the file from git


@dataclass(frozen=True)
class Scenario:
    """A repository history and the `dvc metrics diff BASE HEAD --json` to run on it."""

    name: str
    source: str
    commits: tuple[Files, ...]
    base: str = "HEAD~1"
    head: str = "HEAD"
    targets: tuple[str, ...] = ()
    all: bool = False
    # Empty the DVC cache after the last commit, as DVC's tests do with `cache.local.clear()`.
    drop_cache: bool = False
    no_commits: bool = False
    branch: str | None = None  # the last commit goes on this new branch
    # The cache moves to a DVC remote (`.dvc/remote-store`, the default remote) instead.
    remote: bool = False
    # Why mlgate's output differs from DVC's on purpose (see docs/dvc-fidelity.md), and
    # what mlgate prints instead; None when it must be DVC's own output.
    deliberate: str | None = None
    mlgate_json: object = field(default=None)
    mlgate_failed: tuple[str, ...] = ()
    mlgate_exit: int = 0


# ---------------------------------------------------------------------------- DVC files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - DVC's content address, not security


def _manifest(tree: Mapping[str, str]) -> bytes:
    # dvc_data's Tree.as_bytes: the sorted listing, dumped with sorted keys.
    entries = [{"md5": md5(text.encode()), "relpath": rel} for rel, text in sorted(tree.items())]
    return json.dumps(entries, sort_keys=True).encode()


def _objects(cached: Cached) -> dict[str, bytes]:
    """Cache objects `{md5 (….dir for a folder): bytes}` of a cached file or folder."""
    if isinstance(cached.content, str):
        data = cached.content.encode()
        return {md5(data): data}
    objects = {md5(text.encode()): text.encode() for text in cached.content.values()}
    manifest = _manifest(cached.content)
    objects[md5(manifest) + ".dir"] = manifest
    return objects


def out_entry(
    path: str, content: str | Mapping[str, str], legacy: bool = False
) -> dict[str, object]:
    """The `outs:` entry DVC writes for a file or folder with this content."""
    if isinstance(content, str):
        entry: dict[str, object] = {"md5": md5(content.encode()), "size": len(content.encode())}
    else:
        entry = {
            "md5": md5(_manifest(content)) + ".dir",
            "size": sum(len(t.encode()) for t in content.values()),
            "nfiles": len(content),
        }
    if not legacy:
        entry["hash"] = "md5"
    return {**entry, "path": path}


def dvc_add(
    path: str, content: str | Mapping[str, str], legacy: bool = False
) -> dict[str, str | Cached]:
    """What `dvc add PATH` leaves: `PATH.dvc` in git, the data in the cache."""
    name = path.rsplit("/", 1)[-1]
    pointer = yaml.safe_dump({"outs": [out_entry(name, content, legacy)]}, sort_keys=False)
    return {f"{path}.dvc": pointer, path: Cached(content, legacy)}


def lock(stages: Mapping[str, Mapping[str, str | Mapping[str, str]]], legacy: bool = False) -> str:
    """dvc.lock text for stages' outputs `{stage: {path as written: content}}`."""
    data = {
        "schema": "2.0",
        "stages": {
            name: {
                "cmd": f"python make.py {name}",
                "outs": [out_entry(path, content, legacy) for path, content in outs.items()],
            }
            for name, outs in stages.items()
        },
    }
    return yaml.safe_dump(data, sort_keys=False)


def stage_metric(
    path: str, content: str, name: str = "copy-metrics", cache: bool = True
) -> dict[str, str | Cached]:
    """DVC's `run_copy_metrics`: a stage whose metrics output is `path` (cached by default)."""
    entry: object = path if cache else {path: {"cache": False}}
    pipeline = {"stages": {name: {"cmd": f"python copy.py {path}", "metrics": [entry]}}}
    files: dict[str, str | Cached] = {
        "dvc.yaml": yaml.safe_dump(pipeline, sort_keys=False),
        "dvc.lock": lock({name: {path: content}}),
    }
    files[path] = Cached(content) if cache else content
    return files


# ---------------------------------------------------------------------------- building

DVC_INIT: dict[str, str] = {".dvc/config": "", ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n"}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        # Whatever the developer's git config says, commits are made the same way.
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env=os.environ
        | {
            "GIT_AUTHOR_NAME": "Alice",
            "GIT_AUTHOR_EMAIL": "alice@example.com",
            "GIT_COMMITTER_NAME": "Alice",
            "GIT_COMMITTER_EMAIL": "alice@example.com",
            "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
        },
    )
    return result.stdout.strip()


def _store(repo: Path, cached: Cached) -> None:
    prefix = repo / ".dvc" / "cache"
    if not cached.legacy:
        prefix = prefix / "files" / "md5"
    for digest, data in _objects(cached).items():
        target = prefix / digest[:2] / digest[2:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _write(path: Path, content: str | Mapping[str, str]) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    if isinstance(content, str):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Lone surrogates stand for raw bytes, so a scenario can hold a file that is not UTF-8.
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
        return
    for relative, text in content.items():
        _write(path / relative, text)


REMOTE_CONFIG = """[core]
    remote = storage
['remote "storage"']
    url = remote-store
"""


def _config(scenario: Scenario) -> dict[str, str]:
    files = {".dvc/config": REMOTE_CONFIG} if scenario.remote else {}
    # mlgate's stand-in for `--targets`: `metrics.files`, read at the base. DVC ignores it.
    if scenario.targets:
        config = {"version": 1, "metrics": {"files": list(scenario.targets)}}
        files[".github/mlgate.yml"] = yaml.safe_dump(config, sort_keys=False)
    return files


def build(scenario: Scenario, repo: Path) -> None:
    """Make the scenario's repository at `repo` (an empty folder): its commits, its cache."""
    git(repo, "init", "--quiet", "--initial-branch", "main")
    if scenario.no_commits:
        for name, text in DVC_INIT.items():
            _write(repo / name, text)
        return
    for index, files in enumerate(scenario.commits):
        if scenario.branch is not None and index == len(scenario.commits) - 1:
            git(repo, "checkout", "--quiet", "-b", scenario.branch)
        batch = {**DVC_INIT, **_config(scenario), **files} if index == 0 else dict(files)
        for name, content in batch.items():
            path = repo / name
            if content is None:
                git(repo, "rm", "-r", "--quiet", "--cached", "--ignore-unmatch", "--", name)
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            elif isinstance(content, Cached):
                # In the working tree and the cache, out of git, as after `dvc add`/`dvc repro`.
                git(repo, "rm", "-r", "--quiet", "--cached", "--ignore-unmatch", "--", name)
                _write(path, content.content)
                _store(repo, content)
            else:
                _write(path, content)
                git(repo, "add", "--force", "--", name)
        git(repo, "commit", "--quiet", "--allow-empty", "--message", f"commit {index}")
    if scenario.remote:
        shutil.move(repo / ".dvc" / "cache", repo / ".dvc" / "remote-store")
    if scenario.drop_cache:
        shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)


# ---------------------------------------------------------------------------- scenarios

DIFF = "iterative/dvc tests/func/metrics/test_diff.py::"
SHOW = "iterative/dvc tests/func/metrics/test_show.py::"
ISSUE = "mlgate issue 15: "


def _nested(value: int) -> dict[str, object]:
    return {"a": {"b": {"c": value, "d": 1, "e": str(value)}}}


def _copy_history(path: str, values: list[str], cache: bool = True) -> tuple[Files, ...]:
    return tuple(stage_metric(path, value, cache=cache) for value in values)


def _top_level(dvcfile: str, entry: str, metrics_file: str) -> Scenario:
    first = {dvcfile: yaml.safe_dump({"metrics": [entry]}), metrics_file: "foo: 3\n"}
    return Scenario(
        f"test_diff_top_level_metrics[{dvcfile}-{entry}]",
        DIFF + "test_diff_top_level_metrics",
        ({"README": "x\n"}, first, {metrics_file: "foo: 5\n"}),
        base="HEAD~1",
    )


SCENARIOS: tuple[Scenario, ...] = (
    # -- test_diff.py
    Scenario(
        "test_metrics_diff_simple",
        DIFF + "test_metrics_diff_simple",
        _copy_history("m.yaml", ["1", "2", "3"]),
        base="HEAD~2",
    ),
    Scenario(
        "test_metrics_diff_yaml",
        DIFF + "test_metrics_diff_yaml",
        _copy_history("m.yaml", [yaml.safe_dump(_nested(v)) for v in (1, 2, 3)]),
        base="HEAD~2",
    ),
    Scenario(
        "test_metrics_diff_json",
        DIFF + "test_metrics_diff_json",
        _copy_history("m.json", [json.dumps(_nested(v)) for v in (1, 2, 3)]),
        base="HEAD~2",
    ),
    Scenario(
        "test_metrics_diff_json_unchanged",
        DIFF + "test_metrics_diff_json_unchanged",
        _copy_history("m.json", [json.dumps(_nested(v)) for v in (1, 2, 1)]),
        base="HEAD~2",
    ),
    Scenario(
        "test_metrics_diff_broken_json",
        DIFF + "test_metrics_diff_broken_json (the broken file committed)",
        (
            stage_metric("m.json", json.dumps(_nested(1) | {}), cache=False),
            {"m.json": json.dumps({"a": {"b": {"c": 1, "d": 1, "e": "3"}}}) + "ma\nlformed\n"},
        ),
    ),
    Scenario(
        "test_metrics_diff_no_metrics",
        DIFF + "test_metrics_diff_no_metrics",
        ({"README": "x\n"}, {"foo": "foo"}),
    ),
    Scenario(
        "test_metrics_diff_new_metric",
        DIFF + "test_metrics_diff_new_metric",
        ({"README": "x\n"}, stage_metric("m.json", json.dumps(_nested(3)), cache=False)),
    ),
    Scenario(
        "test_metrics_diff_deleted_metric",
        DIFF + "test_metrics_diff_deleted_metric (the deletion committed)",
        (stage_metric("m.json", json.dumps(_nested(3)), cache=False), {"m.json": None}),
    ),
    Scenario(
        "test_metrics_diff_with_unchanged",
        DIFF + "test_metrics_diff_with_unchanged",
        (
            stage_metric("metrics.yaml", "foo: 1\nxyz: 10", cache=False),
            {"metrics.yaml": "foo: 2\nxyz: 10"},
            {"metrics.yaml": "foo: 3\nxyz: 10"},
        ),
        base="HEAD~2",
        all=True,
    ),
    Scenario("test_no_commits", DIFF + "test_no_commits", (), no_commits=True),
    Scenario(
        "test_metrics_diff_dirty",
        DIFF + "test_metrics_diff_dirty (the workspace change committed)",
        _copy_history("m.yaml", ["1", "2", "3", "4"]),
    ),
    Scenario(
        "test_metrics_diff_cli",
        DIFF + "test_metrics_diff_cli (as --json)",
        _copy_history(
            "m.yaml", [f"foo: {v}" for v in (1.23456789, 2.34567891011, 3.45678910111213)]
        ),
        base="HEAD~2",
    ),
    Scenario(
        "test_metrics_diff_non_metrics",
        DIFF + "test_metrics_diff_non_metrics (targets: metrics.files)",
        tuple({"some_file.yaml": f"foo: {v}"} for v in (1, 2, 3)),
        base="HEAD~2",
        targets=("some_file.yaml",),
    ),
    _top_level("dvc.yaml", "my_metrics.yaml", "my_metrics.yaml"),
    _top_level("dir/dvc.yaml", "my_metrics.yaml", "dir/my_metrics.yaml"),
    _top_level("dir/dvc.yaml", "../my_metrics.yaml", "my_metrics.yaml"),
    Scenario(
        "test_metrics_diff_active_branch_unchanged",
        DIFF + "test_metrics_diff_active_branch_unchanged",
        _copy_history("m.yaml", [yaml.safe_dump(_nested(v)) for v in (1, 2, 1)]),
        base="main",
    ),
    # -- test_show.py, each as a diff from the commit before
    Scenario(
        "test_show_simple",
        SHOW + "test_show_simple (a bare number, new at HEAD)",
        ({"README": "x\n"}, stage_metric("metrics.yaml", "1.1")),
    ),
    Scenario(
        "test_show_simple[changed]",
        SHOW + "test_show_simple (a bare number that changes)",
        _copy_history("metrics.yaml", ["1.0", "1.1"]),
    ),
    Scenario(
        "test_show_simple_from_subdir",
        SHOW + "test_show_simple_from_subdir",
        _copy_history("subdir/metrics.yaml", ["1.0", "1.1"]),
    ),
    Scenario(
        "test_show",
        SHOW + "test_show",
        ({"README": "x\n"}, stage_metric("metrics.yaml", "foo: 1.1")),
    ),
    Scenario(
        "test_show_toml",
        SHOW + "test_show_toml",
        _copy_history("metrics.toml", ["[foo]\nbar = 1.0", "[foo]\nbar = 1.2"]),
    ),
    Scenario(
        "test_show_multiple",
        SHOW + "test_show_multiple (files without an extension read as YAML)",
        (
            {"README": "x\n"},
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "copy-to-foo": {"cmd": "cp foo_temp foo", "metrics": ["foo"]},
                            "copy-to-baz": {"cmd": "cp baz_temp baz", "metrics": ["baz"]},
                        }
                    }
                ),
                "dvc.lock": lock(
                    {"copy-to-foo": {"foo": "foo: 1\n"}, "copy-to-baz": {"baz": "baz: 2\n"}}
                ),
                "foo": Cached("foo: 1\n"),
                "baz": Cached("baz: 2\n"),
            },
        ),
    ),
    Scenario(
        "test_show_branch",
        SHOW + "test_show_branch",
        (stage_metric("metrics.yaml", "foo: 1", cache=False), {"metrics.yaml": "foo: 2"}),
        base="main",
        head="branch",
        branch="branch",
    ),
    Scenario(
        "test_missing_cache",
        SHOW + "test_missing_cache (metrics2.yaml's cache removed)",
        (
            {"README": "x\n"},
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "copy-metrics": {"cmd": "cp", "metrics": ["metrics.yaml"]},
                            "copy-metrics2": {"cmd": "cp", "metrics": ["metrics2.yaml"]},
                        }
                    }
                ),
                "dvc.lock": lock(
                    {
                        "copy-metrics": {"metrics.yaml": "1.1"},
                        "copy-metrics2": {"metrics2.yaml": "foo: 2.2"},
                    }
                ),
                "metrics.yaml": Cached("1.1"),
            },
        ),
        base="HEAD~1",
    ),
    Scenario(
        "test_show_non_metric",
        SHOW + "test_show_non_metric (targets: metrics.files)",
        ({"metrics.yaml": "foo: 1.0"}, {"metrics.yaml": "foo: 1.1"}),
        targets=("metrics.yaml",),
    ),
    Scenario(
        "test_show_non_metric_branch",
        SHOW + "test_show_non_metric_branch (targets: metrics.files)",
        ({"metrics.yaml": "foo: 1.1"}, {"metrics.yaml": "foo: 2.2"}),
        base="main",
        head="branch",
        branch="branch",
        targets=("metrics.yaml",),
    ),
    Scenario(
        "test_non_metric_and_dir_show",
        SHOW + "test_non_metric_and_dir_show (targets: metrics.files)",
        (
            {"metrics_t.yaml": "foo: 1.0", "metrics/metric1.yaml": "bar: 1.0"},
            {
                "metrics_t.yaml": "foo: 1.1",
                "metrics/metric1.yaml": "bar: 1.2",
                "dvc.yaml": yaml.safe_dump(
                    {"stages": {"copy-metric2": {"cmd": "cp", "metrics": ["metrics/metric2.yaml"]}}}
                ),
                "dvc.lock": lock({"copy-metric2": {"metrics/metric2.yaml": "foo: 1.1"}}),
                "metrics/metric2.yaml": Cached("foo: 1.1"),
            },
        ),
        targets=("metrics_t.yaml", "metrics"),
    ),
    Scenario(
        "test_show_falsey",
        SHOW + "test_show_falsey (targets: metrics.files)",
        (
            {"metrics.json": '{"foo": 1, "bar": 1.0}'},
            {"metrics.json": '{"foo": 0, "bar": 0.0, "baz": {}}'},
        ),
        targets=("metrics.json",),
    ),
    Scenario(
        "test_show_malformed_metric",
        SHOW + "test_show_malformed_metric (targets: metrics.files)",
        ({"metric.json": '{"m": 1}'}, {"metric.json": '{"m":1'}),
        targets=("metric.json",),
    ),
    Scenario(
        "test_metrics_show_no_target",
        SHOW + "test_metrics_show_no_target (targets: metrics.files)",
        ({"README": "x\n"}, {"README": "y\n"}),
        targets=("metrics.json",),
    ),
    Scenario(
        "test_show_no_metrics_files",
        SHOW + "test_show_no_metrics_files",
        ({"README": "x\n"}, {"README": "y\n"}),
    ),
    Scenario(
        "test_log_errors[dvc.yaml]",
        SHOW + "test_log_errors[dvc.yaml] (the broken dvc.yaml committed)",
        (
            stage_metric("metrics.yaml", "m: 1.1", name="train"),
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "train": {
                                "cmd": "python copy.py metrics.yaml",
                                "metrics": ["metrics.yaml"],
                            }
                        }
                    },
                    sort_keys=False,
                )
                + "\nMALFORMED!"
            },
        ),
    ),
    Scenario(
        "test_log_errors[metrics.yaml]",
        SHOW + "test_log_errors[metrics.yaml] (the broken metrics committed)",
        _copy_history("metrics.yaml", ["m: 1.1", "m: 1.1\nMALFORMED!"]),
    ),
    Scenario(
        "test_cached_metrics",
        SHOW + "test_cached_metrics (cache kept: mlgate reads no remote)",
        (
            {
                **dvc_add("dir", {"metrics.yaml": "foo: 1\nbar: 10"}),
                **dvc_add("dir2", {"metrics.yaml": "foo: 40\nbar: 4"}),
                "dvc.yaml": yaml.safe_dump({"metrics": ["dir/metrics.yaml", "dir2"]}),
            },
            {
                **dvc_add("dir", {"metrics.yaml": "foo: 3\nbar: 10"}),
                **dvc_add("dir2", {"metrics.yaml": "foo: 42\nbar: 4"}),
            },
        ),
    ),
    Scenario(
        "test_cached_metrics[cache cleared]",
        SHOW + "test_cached_metrics (cache cleared, no remote)",
        (
            {
                **dvc_add("dir", {"metrics.yaml": "foo: 1\nbar: 10"}),
                **dvc_add("dir2", {"metrics.yaml": "foo: 40\nbar: 4"}),
                "dvc.yaml": yaml.safe_dump({"metrics": ["dir/metrics.yaml", "dir2"]}),
            },
            {
                **dvc_add("dir", {"metrics.yaml": "foo: 3\nbar: 10"}),
                **dvc_add("dir2", {"metrics.yaml": "foo: 42\nbar: 4"}),
            },
        ),
        drop_cache=True,
    ),
    Scenario(
        "test_top_level_parametrized",
        SHOW + "test_top_level_parametrized",
        (
            {"README": "x\n"},
            {
                **dvc_add("metrics.yaml", "foo: 3\nbar: 10"),
                "params.yaml": yaml.safe_dump({"metric_file": "metrics.yaml"}),
                "dvc.yaml": yaml.safe_dump({"metrics": ["${metric_file}"]}),
            },
        ),
    ),
    Scenario(
        "test_metric_in_a_tracked_directory_with_missing_dir_file",
        SHOW + "test_metric_in_a_tracked_directory_with_missing_dir_file",
        (
            {
                **dvc_add("dir", {"file": "1"}),
                "dvc.yaml": yaml.safe_dump({"metrics": ["dir/file"]}),
            },
            dvc_add("dir", {"file": "2"}),
        ),
        drop_cache=True,
    ),
    # -- the rest of issue 15
    Scenario(
        "parametrized[foreach]",
        ISSUE + "a foreach stage writing ${item}.json",
        (
            {
                "params.yaml": "models: [rf, svm]\n",
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "evaluate": {
                                "foreach": "${models}",
                                "do": {
                                    "cmd": "python eval.py ${item}",
                                    "metrics": [{"eval/${item}.json": {"cache": False}}],
                                },
                            }
                        }
                    }
                ),
                "eval/rf.json": '{"auc": 0.8}',
                "eval/svm.json": '{"auc": 0.7}',
            },
            {"eval/rf.json": '{"auc": 0.85}', "eval/svm.json": '{"auc": 0.69}'},
        ),
    ),
    Scenario(
        "parametrized[foreach dict, key]",
        ISSUE + "a foreach over a mapping, ${key} and ${item.x}, cached outputs",
        (
            {"README": "x\n"},
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "train": {
                                "foreach": {"small": {"out": "s"}, "large": {"out": "l"}},
                                "do": {
                                    "cmd": "python train.py ${key}",
                                    "metrics": ["results/${key}/${item.out}.json"],
                                },
                            }
                        }
                    }
                ),
                "dvc.lock": lock(
                    {
                        "train@small": {"results/small/s.json": '{"acc": 0.5}'},
                        "train@large": {"results/large/l.json": '{"acc": 0.9}'},
                    }
                ),
                "results/small/s.json": Cached('{"acc": 0.5}'),
                "results/large/l.json": Cached('{"acc": 0.9}'),
            },
        ),
    ),
    Scenario(
        "parametrized[matrix]",
        ISSUE + "a matrix stage",
        (
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "fit": {
                                "matrix": {"model": ["a", "b"], "seed": [1, 2]},
                                "cmd": "python fit.py ${item.model} ${item.seed}",
                                "metrics": [
                                    {"m/${item.model}-${item.seed}.yaml": {"cache": False}}
                                ],
                            }
                        }
                    }
                ),
                **{f"m/{m}-{s}.yaml": f"score: {s}\n" for m in "ab" for s in (1, 2)},
            },
            {"m/a-2.yaml": "score: 3\n", "m/b-1.yaml": "score: 0.5\n"},
        ),
    ),
    Scenario(
        "parametrized[vars file and stage vars]",
        ISSUE + "top-level vars from a file and a stage's own vars",
        (
            {
                "config/paths.yaml": "out_dir: reports\n",
                "dvc.yaml": yaml.safe_dump(
                    {
                        "vars": ["config/paths.yaml", {"name": "summary"}],
                        "metrics": ["${out_dir}/${name}.json"],
                        "stages": {
                            "score": {
                                "vars": [{"kind": "score"}],
                                "cmd": "python score.py",
                                "metrics": [{"${out_dir}/${kind}.yaml": {"cache": False}}],
                            }
                        },
                    }
                ),
                "reports/summary.json": '{"n": 1}',
                "reports/score.yaml": "s: 1\n",
            },
            {"reports/summary.json": '{"n": 2}', "reports/score.yaml": "s: 2\n"},
        ),
    ),
    Scenario(
        "parametrized[params.yaml changes the path]",
        ISSUE + "params.yaml renames the metrics file: each side uses its own",
        (
            {
                "params.yaml": "metrics: old.json\n",
                "dvc.yaml": yaml.safe_dump({"metrics": ["${metrics}"]}),
                "old.json": '{"x": 1}',
                "new.json": '{"x": 5}',
            },
            {"params.yaml": "metrics: new.json\n", "new.json": '{"x": 2}'},
        ),
    ),
    Scenario(
        "parametrized[subdir params.yaml]",
        ISSUE + "a dvc.yaml in a folder takes params.yaml beside it",
        (
            {
                "params.yaml": "file: wrong.json\n",
                "model/params.yaml": "file: right.json\n",
                "model/dvc.yaml": yaml.safe_dump({"metrics": ["${file}"]}),
                "model/right.json": '{"acc": 0.1}',
                "model/wrong.json": '{"acc": 9}',
            },
            {"model/right.json": '{"acc": 0.2}'},
        ),
    ),
    Scenario(
        "parametrized[missing name]",
        ISSUE + "a ${name} that no params define fails the revision",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json"]}), "m.json": '{"x": 1}'},
            {"dvc.yaml": yaml.safe_dump({"metrics": ["${nowhere}.json"]}), "m.json": '{"x": 2}'},
        ),
    ),
    Scenario(
        "directory[committed]",
        ISSUE + "a folder under metrics: is expanded to its files",
        (
            {
                "dvc.yaml": yaml.safe_dump({"metrics": ["reports"]}),
                "reports/a.json": '{"x": 1}',
                "reports/deep/b.yaml": "y: 1\n",
            },
            {
                "reports/a.json": '{"x": 2}',
                "reports/deep/b.yaml": "y: 3\n",
                "reports/c.json": '{"z": 1}',
            },
        ),
    ),
    Scenario(
        "directory[tracked by dvc add]",
        ISSUE + "a DVC-tracked folder under metrics:, read from the cache",
        (
            {
                **dvc_add("eval", {"a.json": '{"x": 1}', "sub/b.json": '{"y": 1}'}),
                "dvc.yaml": yaml.safe_dump({"metrics": ["eval"]}),
            },
            dvc_add(
                "eval", {"a.json": '{"x": 2}', "sub/b.json": '{"y": 1}', "c.json": '{"z": 0.5}'}
            ),
        ),
    ),
    Scenario(
        "wdir",
        ISSUE + "a stage with wdir: its metrics are relative to it",
        (
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "eval": {
                                "wdir": "src",
                                "cmd": "python eval.py",
                                "metrics": [
                                    {"../out/metrics.json": {"cache": False}},
                                    "scores.json",
                                ],
                            }
                        }
                    }
                ),
                "dvc.lock": lock({"eval": {"scores.json": '{"s": 1}'}}),
                "src/scores.json": Cached('{"s": 1}'),
                "out/metrics.json": '{"m": 1}',
            },
            {
                "dvc.lock": lock({"eval": {"scores.json": '{"s": 2}'}}),
                "src/scores.json": Cached('{"s": 2}'),
                "out/metrics.json": '{"m": 0}',
            },
        ),
    ),
    Scenario(
        "declared only at head",
        ISSUE + "the base is read with its own dvc.yaml: a file declared only at head is null",
        (
            {"m.json": '{"x": 1}', "README": "x\n"},
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json"]}), "m.json": '{"x": 2}'},
        ),
    ),
    Scenario(
        "monorepo",
        ISSUE + "one dvc.yaml per model, stage metrics in each",
        (
            {
                **{
                    f"models/{m}/dvc.yaml": yaml.safe_dump(
                        {
                            "stages": {
                                "eval": {
                                    "cmd": "python e.py",
                                    "metrics": [{"metrics.json": {"cache": False}}],
                                }
                            }
                        }
                    )
                    for m in ("a", "b")
                },
                "models/a/metrics.json": '{"acc": 0.5}',
                "models/b/metrics.json": '{"acc": 0.6}',
            },
            {"models/a/metrics.json": '{"acc": 0.55}', "models/b/metrics.json": '{"acc": 0.6}'},
        ),
    ),
    Scenario(
        "broken[yaml]",
        ISSUE + "malformed YAML metrics",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.yaml"]}), "m.yaml": "a: 1\n"},
            {"m.yaml": "a: [1\n"},
        ),
    ),
    Scenario(
        "broken[empty json]",
        ISSUE + "an empty JSON file",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json"]}), "m.json": '{"a": 1}'},
            {"m.json": ""},
        ),
    ),
    Scenario(
        "broken[json with byte-order mark]",
        ISSUE + "JSON starting with a UTF-8 byte-order mark",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json"]}), "m.json": '{"a": 1}'},
            {"m.json": '\ufeff{"a": 2}'},
        ),
    ),
    Scenario(
        "broken[yaml key twice]",
        ISSUE + "a YAML mapping with a key written twice",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.yaml"]}), "m.yaml": "a: 1\n"},
            {"m.yaml": "a: 2\na: 3\n"},
        ),
    ),
    Scenario(
        "broken[both sides]",
        ISSUE + "both revisions broken",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json"]}), "m.json": "{"},
            {"m.json": "[1,"},
        ),
    ),
    Scenario(
        "bare number becomes a mapping",
        ISSUE + "a file that changes from a bare number to a mapping",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.yaml"]}), "m.yaml": "0.5\n"},
            {"m.yaml": "acc: 0.7\n"},
        ),
    ),
    Scenario(
        "bare string that is JSON",
        ISSUE + "a bare quoted string holding a number",
        (
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.yaml"]}), "m.yaml": "'3'\n"},
            {"m.yaml": "'5'\n"},
        ),
    ),
    Scenario(
        "legacy dvc 2 cache",
        ISSUE + "outputs hashed by DVC 2 (no `hash: md5`), in the old cache layout",
        (
            {
                **dvc_add("metrics.json", '{"a": 1}', legacy=True),
                "dvc.yaml": yaml.safe_dump({"metrics": ["metrics.json"]}),
            },
            dvc_add("metrics.json", '{"a": 2}', legacy=True),
        ),
    ),
    Scenario(
        "cached metric without a lock entry",
        ISSUE + "a cached stage metric dvc.lock does not name",
        (
            stage_metric("m.json", '{"a": 1}'),
            {"dvc.lock": None, "m.json": Cached('{"a": 2}')},
        ),
    ),
    Scenario(
        "all with a removed file",
        ISSUE + "--all when a file is removed and another unchanged",
        (
            {
                "dvc.yaml": yaml.safe_dump({"metrics": ["a.json", "b.json"]}),
                "a.json": '{"x": 1, "y": "s"}',
                "b.json": '{"k": 1}',
            },
            {"dvc.yaml": yaml.safe_dump({"metrics": ["a.json"]})},
        ),
        all=True,
    ),
)


def _declared(path: str) -> str:
    return yaml.safe_dump({"metrics": [path]})


MORE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "subdir dvc.yaml with stages and dvc.lock",
        ISSUE + "a cached stage metric in a folder's own dvc.yaml and dvc.lock",
        tuple(
            {
                "model/dvc.yaml": yaml.safe_dump(
                    {"stages": {"eval": {"cmd": "python e.py", "metrics": ["eval.json"]}}}
                ),
                "model/dvc.lock": lock({"eval": {"eval.json": text}}),
                "model/eval.json": Cached(text),
            }
            for text in ('{"f1": 0.3}', '{"f1": 0.4}')
        ),
    ),
    Scenario(
        "schema[extra top-level key]",
        ISSUE + "a dvc.yaml with a key DVC does not know fails the revision",
        (
            {"dvc.yaml": _declared("m.json"), "m.json": '{"x": 1}'},
            {"dvc.yaml": _declared("m.json") + "colour: blue\n", "m.json": '{"x": 2}'},
        ),
    ),
    Scenario(
        "schema[stage without cmd]",
        ISSUE + "a stage without `cmd` fails the revision",
        (
            {"dvc.yaml": _declared("m.json"), "m.json": '{"x": 1}'},
            {
                "dvc.yaml": yaml.safe_dump(
                    {"metrics": ["m.json"], "stages": {"s": {"metrics": ["n.json"]}}}
                ),
                "m.json": '{"x": 2}',
            },
        ),
    ),
    Scenario(
        "foreach[list of mappings]",
        ISSUE + "foreach over a list of mappings: generated names are indexes",
        (
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "ev": {
                                "foreach": [{"n": "x"}, {"n": "y"}],
                                "do": {
                                    "cmd": "echo ${item.n}",
                                    "metrics": [{"${item.n}.json": {"cache": False}}],
                                },
                            }
                        }
                    }
                ),
                "x.json": '{"v": 1}',
                "y.json": '{"v": 2}',
            },
            {"x.json": '{"v": 5}'},
        ),
    ),
    Scenario(
        "foreach[over params, cached, dvc.lock by generated name]",
        ISSUE + "foreach over a params mapping, outputs cached and locked as name@key",
        tuple(
            {
                "params.yaml": yaml.safe_dump({"sets": {"train": 1, "test": 2}}),
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "score": {
                                "foreach": "${sets}",
                                "do": {
                                    "cmd": "s ${key} ${item}",
                                    "metrics": ["scores/${key}.yaml"],
                                },
                            }
                        }
                    }
                ),
                "dvc.lock": lock(
                    {
                        "score@train": {"scores/train.yaml": f"acc: {a}\n"},
                        "score@test": {"scores/test.yaml": f"acc: {b}\n"},
                    }
                ),
                "scores/train.yaml": Cached(f"acc: {a}\n"),
                "scores/test.yaml": Cached(f"acc: {b}\n"),
            }
            for a, b in ((0.9, 0.7), (0.95, 0.71))
        ),
    ),
    Scenario(
        "matrix[mapping values]",
        ISSUE + "a matrix with mapping values: generated keys use the index",
        (
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "fit": {
                                "matrix": {"cfg": [{"lr": 1}, {"lr": 2}], "ds": ["a"]},
                                "cmd": "fit ${item.cfg.lr}",
                                "metrics": [{"fit/${key}.json": {"cache": False}}],
                            }
                        }
                    }
                ),
                "fit/cfg0-a.json": '{"l": 1}',
                "fit/cfg1-a.json": '{"l": 2}',
            },
            {"fit/cfg1-a.json": '{"l": 3}'},
        ),
    ),
    Scenario(
        "interpolation[escaped and typed]",
        ISSUE + "`\\${` stays literal; numbers and booleans inside a path",
        (
            {
                "params.yaml": "n: 3\nflag: true\n",
                "dvc.yaml": yaml.safe_dump({"metrics": ["r${n}-${flag}.json", "lit-\\${n}.json"]}),
                "r3-true.json": '{"a": 1}',
                "lit-${n}.json": '{"b": 1}',
            },
            {"r3-true.json": '{"a": 2}', "lit-${n}.json": '{"b": 2}'},
        ),
    ),
    Scenario(
        "interpolation[wdir]",
        ISSUE + "a templated wdir",
        (
            {
                "params.yaml": "where: work\n",
                "dvc.yaml": yaml.safe_dump(
                    {
                        "stages": {
                            "s": {
                                "wdir": "${where}",
                                "cmd": "x",
                                "metrics": [{"m.json": {"cache": False}}],
                            }
                        }
                    }
                ),
                "work/m.json": '{"a": 1}',
            },
            {"work/m.json": '{"a": 2}'},
        ),
    ),
    Scenario(
        "interpolation[vars conflict with params.yaml]",
        ISSUE + "vars redefining a params.yaml name fails the revision",
        (
            {"params.yaml": "f: m.json\n", "dvc.yaml": _declared("${f}"), "m.json": '{"a": 1}'},
            {"dvc.yaml": yaml.safe_dump({"vars": [{"f": "m.json"}], "metrics": ["${f}"]})},
        ),
    ),
    Scenario(
        "interpolation[broken params.yaml]",
        ISSUE + "a params.yaml that does not parse fails the revision",
        (
            {"params.yaml": "f: m.json\n", "dvc.yaml": _declared("${f}"), "m.json": '{"a": 1}'},
            {"params.yaml": "f: [\n", "m.json": '{"a": 2}'},
        ),
    ),
    Scenario(
        "cached output also committed",
        ISSUE + "a cached metric that is committed too: git's copy is read",
        (
            stage_metric("m.json", '{"a": 1}'),
            {**stage_metric("m.json", '{"a": 2}'), "m.json": '{"a": 7}'},
        ),
    ),
    Scenario(
        "declared twice",
        ISSUE + "a file declared at the top level and as a stage metric",
        tuple(
            {
                "dvc.yaml": yaml.safe_dump(
                    {
                        "metrics": ["m.json"],
                        "stages": {"s": {"cmd": "x", "metrics": [{"m.json": {"cache": False}}]}},
                    }
                ),
                "m.json": text,
            }
            for text in ('{"a": 1}', '{"a": 2}')
        ),
    ),
    Scenario(
        "metric: true in a .dvc file",
        ISSUE + "DVC 1's single-stage files mark metrics with `metric: true`",
        tuple(
            {
                "m.json.dvc": yaml.safe_dump(
                    {"outs": [{**out_entry("m.json", text), "metric": True}]}, sort_keys=False
                ),
                "m.json": Cached(text),
            }
            for text in ('{"a": 1}', '{"a": 3}')
        ),
    ),
    Scenario(
        "broken[dvc.lock]",
        ISSUE + "a dvc.lock that does not parse",
        (
            stage_metric("m.json", '{"a": 1}'),
            {"dvc.lock": "schema: '2.0'\nstages: [\n", "m.json": Cached('{"a": 2}')},
        ),
    ),
    Scenario(
        "broken[toml with byte-order mark]",
        ISSUE + "TOML starting with a byte-order mark; YAML with one reads fine",
        (
            {
                "dvc.yaml": yaml.safe_dump({"metrics": ["m.toml", "m.yaml"]}),
                "m.toml": "a = 1\n",
                "m.yaml": "b: 1\n",
            },
            {"m.toml": "\ufeffa = 2\n", "m.yaml": "\ufeffb: 2\n"},
        ),
    ),
    Scenario(
        "values[nan, infinity, booleans, strings]",
        ISSUE + "NaN and Infinity in JSON, booleans, a string that became a number",
        (
            {
                "dvc.yaml": _declared("m.json"),
                "m.json": '{"n": 1, "i": 1, "ok": false, "s": "3", "u": "x"}',
            },
            {"m.json": '{"n": NaN, "i": Infinity, "ok": true, "s": 3, "u": "x"}'},
        ),
    ),
    Scenario(
        "values[lists, nulls, nested empties dropped]",
        ISSUE + "lists, nulls and empty mappings are not metrics",
        (
            {"dvc.yaml": _declared("m.yaml"), "m.yaml": "a: [1, 2]\nb: null\nc: {d: {}}\ne: 1\n"},
            {"m.yaml": "a: [3]\nb: 2\nc: {d: {f: 1}}\ne: 1\n"},
        ),
    ),
    Scenario(
        "values[unicode keys]",
        ISSUE + "non-ASCII keys and paths",
        (
            {"dvc.yaml": _declared("métriques.json"), "métriques.json": '{"précision": 0.5}'},
            {"métriques.json": '{"précision": 0.75}'},
        ),
    ),
    Scenario(
        "targets[broken dvc.yaml]",
        ISSUE + "a committed target is read even when dvc.yaml is broken",
        (
            {"m.json": '{"a": 1}', "dvc.yaml": _declared("m.json")},
            {"m.json": '{"a": 2}', "dvc.yaml": "stages: [\n"},
        ),
        targets=("m.json",),
    ),
    Scenario(
        "targets[cached output]",
        ISSUE + "a configured file that DVC keeps in its cache",
        (
            dvc_add("m.json", '{"a": 1}'),
            dvc_add("m.json", '{"a": 4}'),
        ),
        targets=("m.json",),
    ),
    Scenario(
        "dvc.yaml inside an output folder",
        ISSUE + "DVC does not read DVC files inside a folder that is an output",
        (
            {
                **dvc_add("data", {"dvc.yaml": _declared("x.json"), "x.json": '{"a": 1}'}),
                "dvc.yaml": _declared("m.json"),
                "m.json": '{"b": 1}',
            },
            {
                **dvc_add("data", {"dvc.yaml": _declared("x.json"), "x.json": '{"a": 2}'}),
                "m.json": '{"b": 2}',
            },
        ),
    ),
    Scenario(
        "folder with dvc files inside",
        ISSUE + "a metrics folder holding a .dvc pointer: both files are read",
        (
            {
                "dvc.yaml": _declared("res"),
                **dvc_add("res/big.json", '{"x": 1}'),
                "res/small.json": '{"y": 1}',
            },
            {**dvc_add("res/big.json", '{"x": 2}'), "res/small.json": '{"y": 1}'},
        ),
    ),
    Scenario(
        "not utf-8",
        ISSUE + "a metrics file that is not UTF-8",
        (
            {"dvc.yaml": _declared("m.yaml"), "m.yaml": "a: 1\n"},
            {"m.yaml": "a: caf\udce9\n"},
        ),
    ),
    Scenario(
        "metrics outside the repository",
        ISSUE + "a metrics path that climbs out of the repository",
        (
            {"dvc.yaml": _declared("m.json"), "m.json": '{"a": 1}'},
            {"dvc.yaml": yaml.safe_dump({"metrics": ["m.json", "../outside.json"]})},
        ),
    ),
    Scenario(
        "dvcignore",
        ISSUE + "a dvc.yaml in a folder that .dvcignore lists is not read",
        (
            {
                ".dvcignore": "scratch/\n",
                "scratch/dvc.yaml": _declared("s.json"),
                "scratch/s.json": '{"a": 1}',
                "dvc.yaml": _declared("m.json"),
                "m.json": '{"b": 1}',
            },
            {"scratch/s.json": '{"a": 2}', "m.json": '{"b": 2}'},
        ),
    ),
    Scenario(
        "subrepo",
        ISSUE + "a folder with its own .dvc/ is another DVC project",
        (
            {
                "sub/.dvc/config": "",
                "sub/dvc.yaml": _declared("s.json"),
                "sub/s.json": '{"a": 1}',
                "dvc.yaml": _declared("m.json"),
                "m.json": '{"b": 1}',
            },
            {"sub/s.json": '{"a": 2}', "m.json": '{"b": 2}'},
        ),
    ),
    Scenario(
        "python metrics file",
        ISSUE + "a .py metrics file, which DVC reads as Python assignments",
        (
            {"dvc.yaml": _declared("m.py"), "m.py": "acc = 0.5\n"},
            {"m.py": "acc = 0.6\n"},
        ),
    ),
)

CACHED_DIRS = (
    {
        **dvc_add("dir", {"metrics.yaml": "foo: 1\nbar: 10"}),
        "dvc.yaml": yaml.safe_dump({"metrics": ["dir/metrics.yaml"]}),
    },
    dvc_add("dir", {"metrics.yaml": "foo: 3\nbar: 10"}),
)

DELIBERATE: tuple[Scenario, ...] = (
    Scenario(
        "test_cached_metrics[remote only]",
        SHOW + "test_cached_metrics (the data only in a DVC remote)",
        CACHED_DIRS,
        # DVC 3.67 reads a remote for the workspace only; between commits neither tool does.
        remote=True,
    ),
    Scenario(
        "nested and dotted key clash",
        ISSUE + "a file with both {a: {b}} and a.b, which DVC cannot flatten",
        (
            {"dvc.yaml": _declared("m.json"), "m.json": '{"a": {"b": 1}}'},
            {"m.json": '{"a": {"b": 1}, "a.b": 2}'},
        ),
        deliberate="DVC stops with `unexpected error - duplicated key`; mlgate reads the file "
        "as broken (null) and names the key",
        mlgate_json={"m.json": {"a.b": {"old": 1, "new": None}}},
        mlgate_failed=("HEAD",),
    ),
    Scenario(
        "unknown revision",
        ISSUE + "a base that names no commit",
        ({"README": "x\n"},),
        base="no-such-branch",
        deliberate="a usage error exits 2 with git's words, where DVC exits 255",
        mlgate_json=None,
        mlgate_exit=2,
    ),
)

SCENARIOS = SCENARIOS + MORE_SCENARIOS + DELIBERATE
