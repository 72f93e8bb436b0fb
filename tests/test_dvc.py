"""DVC files as DVC writes them: `.dvc`, dvc.lock, dvc.yaml and params, and their diffs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bot.core.dvc import (
    DataChange,
    Output,
    ParamChange,
    compose_yaml,
    diff_outputs,
    diff_params,
    flatten_params,
    load_params_data,
    load_python_literals,
    load_yaml,
    lock_params,
    metrics_files,
    outputs,
    parse_dvc_file,
    parse_dvc_lock,
    stage_wdirs,
)
from bot.errors import DvcFileError

DVC = Path(__file__).parent / "fixtures" / "dvc"


def read(relative: str) -> str:
    return (DVC / relative).read_text()


def test_dvc2_pointer_output_is_relative_to_the_dvc_file_folder() -> None:
    outs = parse_dvc_file(read("example-get-started/data/data.xml.dvc"), "data/data.xml.dvc")
    assert outs == {
        "data/data.xml": Output("data/data.xml", "a304afb96060aad90176268345e10355", None, None)
    }


def test_dvc3_pointer_with_hash_field_reads_directory_hash_size_and_nfiles() -> None:
    outs = parse_dvc_file(read("handwritten/data/images.dvc"), "data/images.dvc")
    assert outs["data/images"] == Output(
        "data/images", "9a1b2c3d4e5f60718293a4b5c6d7e8f9.dir", 212454603, 1912
    )


def test_pointer_at_repository_root_keeps_the_plain_path() -> None:
    outs = parse_dvc_file(read("example-get-started-experiments/data/pool_data.dvc"), "pool.dvc")
    assert list(outs) == ["pool_data"]


def test_dvc_lock_stages_keep_cmd_deps_params_and_outs() -> None:
    lock = parse_dvc_lock(read("example-get-started/dvc.lock"))
    assert list(lock.stages) == ["prepare", "featurize", "train", "evaluate"]
    prepare = lock.stages["prepare"]
    assert prepare.cmd == "python src/prepare.py data/data.xml"
    assert prepare.deps[0] == Output(
        "data/data.xml", "a304afb96060aad90176268345e10355", 37891850, None
    )
    assert prepare.params == {"params.yaml": {"prepare.seed": 20170428, "prepare.split": 0.2}}
    assert prepare.outs == (
        Output("data/prepared", "20b786b6e6f80e2b3fcf17827ad18597.dir", 23861319, 2),
    )


def test_dvc_lock_nested_param_groups_flatten_like_dotted_keys() -> None:
    lock = parse_dvc_lock(read("example-get-started-experiments/dvc.lock"))
    assert lock.stages["train"].params["params.yaml"] == {
        "base.random_seed": 42,
        "train.valid_pct": 0.1,
        "train.arch": "shufflenet_v2_x2_0",
        "train.img_size": 256,
        "train.batch_size": 8,
        "train.fine_tune_args.epochs": 8,
        "train.fine_tune_args.base_lr": 0.01,
    }


def test_dvc3_lock_with_hash_md5_lists_every_stage_output() -> None:
    outs = outputs({"dvc.lock": read("semaphore-demo-mlops/dvc.lock")})
    assert sorted(outs) == [
        "data/images",
        "metrics/classification.md",
        "metrics/confusion_matrix.png",
        "metrics/finetune_results.png",
        "metrics/top_losses.png",
        "models/model.pkl",
        "models/model.pth",
    ]
    assert outs["data/images"] == Output(
        "data/images", "edcf3adc979e5ebc257cc498c1522d96.dir", 200054603, 1848
    )


def test_directory_listed_file_by_file_gets_a_count_and_a_fingerprint_not_a_hash() -> None:
    outs = outputs({"dvc.lock": read("semaphore-demo-mlops/dvc.lock.files-listing-excerpt")})
    images = outs["data/images"]
    assert images.md5 is None
    assert images.nfiles == 3
    assert images.size is None  # the listing carries no sizes
    assert images.fingerprint is not None and len(images.fingerprint) == 64


def test_outputs_of_a_file_set_merge_pointers_and_locks_and_ignore_other_files() -> None:
    files = {
        "dvc.lock": read("example-get-started-experiments/dvc.lock"),
        "data/pool_data.dvc": read("example-get-started-experiments/data/pool_data.dvc"),
        "models/model.pkl.dvc": read("example-get-started-experiments/models/model.pkl.dvc"),
        "README.md": "# not DVC",
    }
    assert sorted(outputs(files)) == [
        "data/pool_data",
        "data/test_data",
        "data/train_data",
        "models/model.pkl",
    ]


def test_lock_in_a_subfolder_resolves_outputs_against_folder_and_stage_wdir() -> None:
    lock = "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n    - path: model.pkl\n"
    dvc_yaml = "stages:\n  train:\n    wdir: src\n    cmd: x\n"
    assert list(outputs({"sub/dvc.lock": lock, "sub/dvc.yaml": dvc_yaml})) == ["sub/src/model.pkl"]


def test_dvc1_lock_without_schema_has_stages_at_top_level() -> None:
    lock = parse_dvc_lock("train:\n  cmd: python train.py\n  outs:\n  - path: m.pkl\n    md5: ab\n")
    assert lock.stages["train"].outs == (Output("m.pkl", "ab", None, None),)


def test_diff_outputs_reports_added_removed_and_modified_sorted_by_path() -> None:
    base = {
        "data/images": Output("data/images", "edcf3adc979e5ebc257cc498c1522d96.dir", 200, 1848),
        "models/old.pkl": Output("models/old.pkl", "aa", 10, None),
        "same": Output("same", "cc", 1, None),
    }
    head = {
        "data/images": Output("data/images", "9a1b2c3d4e5f60718293a4b5c6d7e8f9.dir", 260, 1912),
        "models/new.pkl": Output("models/new.pkl", "bb", 12, None),
        "same": Output("same", "cc", 1, None),
    }
    changes = diff_outputs(base, head)
    assert [(c.path, c.kind) for c in changes] == [
        ("data/images", "modified"),
        ("models/new.pkl", "added"),
        ("models/old.pkl", "removed"),
    ]
    assert changes[0].size_delta == 60
    assert changes[0].nfiles_delta == 64
    assert changes[1].size_delta == 12
    assert changes[2].size_delta == -10


@pytest.mark.parametrize(
    "new",
    [
        Output("d", "aa.dir", 5, 2),  # size only
        Output("d", "aa.dir", 4, 3),  # file count only
        Output("d", "bb.dir", 4, 2),  # hash only
    ],
)
def test_any_of_hash_size_or_file_count_changing_is_a_modification(new: Output) -> None:
    old = Output("d", "aa.dir", 4, 2)
    assert diff_outputs({"d": old}, {"d": new}) == [DataChange("d", "modified", old, new)]


def test_params_yaml_flattens_nested_keys() -> None:
    params = flatten_params(read("example-get-started/params.yaml"), "params.yaml")
    assert params == {
        "prepare.split": 0.2,
        "prepare.seed": 20170428,
        "featurize.max_features": 400,
        "featurize.ngrams": 2,
        "train.seed": 20170428,
        "train.n_est": 50,
        "train.min_split": 0.01,
    }


def test_params_json_and_toml_are_read_by_extension() -> None:
    assert flatten_params('{"a": {"b": [1, 2]}}', "params.json") == {"a.b": [1, 2]}
    assert flatten_params("[train]\nlr = 0.1\n", "params.toml") == {"train.lr": 0.1}


def test_params_read_as_yaml_1_2_like_dvc() -> None:
    params = flatten_params("lr: 1e-3\nshuffle: yes\nepochs: 010\nratio: .5\n", "params.yaml")
    assert params == {"lr": 0.001, "shuffle": "yes", "epochs": 10, "ratio": 0.5}


def test_yaml_loader_keeps_yaml_1_2_booleans_and_hex() -> None:
    assert load_yaml("a: true\nb: False\nc: 0x1f\nd: 0o17\ne: .inf\n") == {
        "a": True,
        "b": False,
        "c": 31,
        "d": 15,
        "e": float("inf"),
    }


def test_diff_params_between_lock_and_params_file() -> None:
    base = lock_params(parse_dvc_lock(read("example-get-started/dvc.lock")))
    head = {"params.yaml": flatten_params(read("example-get-started/params.yaml"), "params.yaml")}
    assert diff_params(base, head) == [
        ParamChange("params.yaml", "featurize.max_features", 3000, 400),
        ParamChange("params.yaml", "train.min_split", 64, 0.01),
        ParamChange("params.yaml", "train.n_est", 100, 50),
    ]


def test_diff_params_reports_added_and_removed_keys_and_files_with_none() -> None:
    base: dict[str, dict[str, object]] = {
        "params.yaml": {"lr": 0.1, "old": 1},
        "gone.yaml": {"x": 1},
    }
    head = {"params.yaml": {"lr": 0.1, "new": [1, 2]}}
    assert diff_params(base, head) == [
        ParamChange("gone.yaml", "x", 1, None),
        ParamChange("params.yaml", "new", None, [1, 2]),
        ParamChange("params.yaml", "old", 1, None),
    ]


def test_diff_params_treats_int_and_equal_float_as_same_but_bool_as_different() -> None:
    assert diff_params({"p": {"a": 1, "b": 1}}, {"p": {"a": 1.0, "b": True}}) == [
        ParamChange("p", "b", 1, True)
    ]


def test_metrics_files_from_top_level_and_nested_dvc_yaml() -> None:
    assert metrics_files(read("example-get-started-experiments/dvc.yaml")) == [
        "results/evaluate/metrics.json",
        "results/train/metrics.json",
    ]
    nested = read("example-get-started-experiments/results/evaluate/dvc.yaml")
    assert metrics_files(nested, "results/evaluate/dvc.yaml") == ["results/evaluate/metrics.json"]


def test_metrics_files_of_stages_honour_wdir_mappings_and_skip_templates() -> None:
    assert metrics_files(read("handwritten/dvc.yaml")) == [
        "eval/live/metrics.yaml",
        "eval/scores.json",
        "reports/summary.toml",
        "splits/all.json",
    ]


def test_stage_level_metrics_of_a_real_pipeline() -> None:
    assert metrics_files(read("semaphore-demo-mlops/dvc.yaml")) == ["metrics/classification.md"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("outs: [\n", "invalid YAML"),
        ("- just a list\n", "expected a mapping"),
        ("md5: abc\n", "`outs:` must be a list"),
        ("outs:\n- md5: abc\n", "outs[0] has no `path`"),
        ("outs:\n- path: x\n  size: big\n", "`size` must be an integer"),
    ],
)
def test_malformed_dvc_file_names_the_file_and_the_problem(content: str, reason: str) -> None:
    with pytest.raises(DvcFileError) as error:
        parse_dvc_file(content, "data/images.dvc")
    assert str(error.value).startswith("data/images.dvc: ")
    assert reason in str(error.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("schema: '3.0'\nstages: {}\n", "unsupported schema '3.0'"),
        ("schema: '2.0'\nstages:\n  train: nope\n", "stages.train must be a mapping"),
        ("schema: '2.0'\nstages:\n  t:\n    outs: x\n", "must be lists"),
        ("schema: '2.0'\nstages:\n  t:\n    params: [a]\n", "stages.t.params"),
    ],
)
def test_malformed_dvc_lock_names_the_file_and_the_problem(content: str, reason: str) -> None:
    with pytest.raises(DvcFileError, match=f"^dvc.lock: .*{reason}"):
        parse_dvc_lock(content)


def test_malformed_params_file_names_the_file() -> None:
    with pytest.raises(DvcFileError, match=r"^params.json: invalid JSON"):
        flatten_params("{nope", "params.json")
    with pytest.raises(DvcFileError, match=r"^params.yaml: expected a mapping"):
        flatten_params("- 1\n", "params.yaml")


def test_malformed_dvc_yaml_metrics_entry_names_the_file() -> None:
    with pytest.raises(DvcFileError, match=r"^dvc.yaml: `metrics` entries must be paths"):
        metrics_files("metrics:\n- 3\n")


# --- issue 14: directories listed file by file, cloud outputs, booleans, error branches ---------


def _listed_dir(files: str) -> str:
    return f"outs:\n- path: data\n  files:\n{files}"


def test_a_directory_listed_file_by_file_is_fingerprinted_by_its_listing() -> None:
    one = "  - {relpath: a.csv, md5: aaa, size: 3}\n  - {relpath: b.csv, md5: bbb, size: 4}\n"
    [before] = parse_dvc_file(_listed_dir(one), "data.dvc").values()
    assert (before.md5, before.size, before.nfiles) == (None, 7, 2)
    assert before.fingerprint is not None and len(before.fingerprint) == 64
    # The listing's order does not matter; every field of a file does.
    swapped = "  - {relpath: b.csv, md5: bbb, size: 4}\n  - {relpath: a.csv, md5: aaa, size: 3}\n"
    [same] = parse_dvc_file(_listed_dir(swapped), "data.dvc").values()
    assert same.fingerprint == before.fingerprint
    fingerprints = {before.fingerprint}
    for edited in (
        "  - {relpath: a.csv, md5: aab, size: 3}\n  - {relpath: b.csv, md5: bbb, size: 4}\n",
        "  - {relpath: c.csv, md5: aaa, size: 3}\n  - {relpath: b.csv, md5: bbb, size: 4}\n",
        "  - {relpath: a.csv, md5: aaa, size: 5}\n  - {relpath: b.csv, md5: bbb, size: 2}\n",
    ):
        [after] = parse_dvc_file(_listed_dir(edited), "data.dvc").values()
        assert after.fingerprint is not None and after.fingerprint not in fingerprints
        fingerprints.add(after.fingerprint)
        [change] = diff_outputs({"data": before}, {"data": after})
        assert (change.path, change.kind) == ("data", "modified")


def test_a_listed_directory_keeps_its_written_size_and_count_and_sums_only_known_sizes() -> None:
    listing = "  - {relpath: a.csv, md5: aaa, size: 3}\n  - {relpath: b.csv, md5: bbb}\n  - 7\n"
    [out] = parse_dvc_file(_listed_dir(listing), "data.dvc").values()
    assert (out.size, out.nfiles) == (None, 2)  # a size unknown: no total; `7` is no file
    written = "outs:\n- path: data\n  size: 100\n  nfiles: 9\n  files:\n" + listing
    [kept] = parse_dvc_file(written, "data.dvc").values()
    assert (kept.size, kept.nfiles) == (100, 9)
    [empty] = parse_dvc_file("outs:\n- path: data\n  files: []\n", "d.dvc").values()
    assert (empty.size, empty.nfiles) == (None, 0)


def test_a_hash_beside_a_listing_wins_and_no_fingerprint_is_made() -> None:
    text = "outs:\n- path: data\n  md5: abc.dir\n  files:\n  - {relpath: a, md5: x, size: 1}\n"
    [out] = parse_dvc_file(text, "data.dvc").values()
    assert (out.md5, out.fingerprint, out.size, out.nfiles) == ("abc.dir", None, None, None)


@pytest.mark.parametrize(
    ("entry", "digest"),
    [
        ("{path: s3://bucket/model.pkl, etag: 8d9a0c-2, size: 3}", "8d9a0c-2"),
        ("{path: s3://bucket/model.pkl, checksum: abc, size: 3}", "abc"),
        ("{path: s3://bucket/model.pkl, md5: m, etag: e, checksum: c, size: 3}", "m"),
        ("{path: s3://bucket/model.pkl, etag: e, checksum: c, size: 3}", "e"),
        ("{path: s3://bucket/model.pkl, etag: 12, size: 3}", "12"),
    ],
)
def test_a_cloud_output_keeps_its_url_and_its_etag_or_checksum(entry: str, digest: str) -> None:
    found = parse_dvc_file(f"outs:\n- {entry}\n", "sub/model.dvc")
    assert found == {"s3://bucket/model.pkl": Output("s3://bucket/model.pkl", digest, 3, None)}


def test_absolute_and_remote_paths_are_not_joined_to_the_folder_or_wdir() -> None:
    text = "wdir: ..\nouts:\n- path: /mnt/data/x\n- path: gs://b/y\n- path: z\n"
    assert sorted(parse_dvc_file(text, "a/b/x.dvc")) == ["/mnt/data/x", "a/z", "gs://b/y"]
    lock = (
        "schema: '2.0'\nstages:\n  s:\n    cmd: c\n    outs:\n"
        "    - {path: s3://b/m, etag: e}\n    - {path: /abs/m, md5: a}\n    - {path: m, md5: b}\n"
    )
    assert sorted(outputs({"sub/dvc.lock": lock})) == ["/abs/m", "s3://b/m", "sub/m"]


def test_unchanged_booleans_are_not_reported_and_a_changed_one_is() -> None:
    base = {"params.yaml": {"a": True, "b": False, "c": 1, "d": 1, "e": 1.0}}
    head = {"params.yaml": {"a": True, "b": False, "c": True, "d": 1.0, "e": 1}}
    assert diff_params(base, head) == [ParamChange("params.yaml", "c", 1, True)]
    flipped = {"params.yaml": {"a": False, "b": False, "c": 1, "d": 1, "e": 1.0}}
    assert diff_params(base, flipped) == [ParamChange("params.yaml", "a", True, False)]
    assert diff_params({"p": {"x": 0}}, {"p": {"x": False}}) == [ParamChange("p", "x", 0, False)]
    assert diff_params({"p": {"x": False}}, {"p": {"x": 0}}) == [ParamChange("p", "x", False, 0)]


def test_a_key_on_one_side_is_reported_with_none_and_none_values_compare_equal() -> None:
    assert diff_params({"p": {"x": None}}, {"p": {"x": None}}) == []
    assert diff_params({"p": {"x": 1}}, {}) == [ParamChange("p", "x", 1, None)]
    assert diff_params({}, {"p": {"x": None}}) == [ParamChange("p", "x", None, None)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- a\n", "expected a mapping at the top level"),
        ("schema: '3.0'\nstages: {}\n", "unsupported schema '3.0'; expected '2.0'"),
        ("schema: '2.0'\nstages: [a]\n", "`stages:` must map stage names to stages"),
        ("schema: '2.0'\nstages:\n  s: 1\n", "stages.s must be a mapping"),
        ("schema: '2.0'\nstages:\n  s: {deps: a}\n", "stages.s: `deps` and `outs` must be lists"),
        ("schema: '2.0'\nstages:\n  s: {outs: a}\n", "stages.s: `deps` and `outs` must be lists"),
        (
            "schema: '2.0'\nstages:\n  s: {params: [a]}\n",
            "stages.s.params must map params files to values",
        ),
        (
            "schema: '2.0'\nstages:\n  s: {params: {p.yaml: 1}}\n",
            "stages.s.params.p.yaml must be a mapping",
        ),
        (
            "schema: '2.0'\nstages:\n  s: {outs: [1]}\n",
            "stages.s.outs[0] must be a mapping with `path`, got 1",
        ),
        ("schema: '2.0'\nstages:\n  s: {deps: [{md5: a}]}\n", "stages.s.deps[0] has no `path`"),
        (
            "schema: '2.0'\nstages:\n  s: {outs: [{path: m, size: x}]}\n",
            "`size` must be an integer, got 'x'",
        ),
        (
            "schema: '2.0'\nstages:\n  s: {outs: [{path: m, nfiles: true}]}\n",
            "`nfiles` must be an integer, got True",
        ),
        ("a: [\n", None),
    ],
)
def test_parse_dvc_lock_names_the_file_and_what_is_wrong(text: str, reason: str | None) -> None:
    with pytest.raises(DvcFileError) as raised:
        parse_dvc_lock(text, "sub/dvc.lock")
    assert raised.value.path == "sub/dvc.lock"
    if reason is None:
        assert raised.value.reason.startswith("invalid YAML: ")
    else:
        assert raised.value.reason == reason


def test_an_empty_lock_or_one_with_empty_stages_has_no_stages() -> None:
    assert parse_dvc_lock("", "dvc.lock").stages == {}
    assert parse_dvc_lock("schema: '2.0'\n", "dvc.lock").stages == {}
    lock = parse_dvc_lock(
        "schema: '2.0'\nstages:\n  s:\n    cmd: [a, b]\n    params:\n      p.yaml:\n", "x"
    )
    assert lock.stages["s"].cmd == ["a", "b"]
    assert lock.stages["s"].params == {"p.yaml": {}}
    assert parse_dvc_lock("s:\n  cmd: 3\n", "x").stages["s"].cmd is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- a\n", "expected a mapping at the top level"),
        ("metrics: m.json\n", "`metrics` must be a list"),
        ("metrics: [{a: 1, b: 2}]\n", "`metrics` entries must be paths, got {'a': 1, 'b': 2}"),
        ("stages: [a]\n", "`stages:` must map stage names to stages"),
        ("stages:\n  s: 1\n", "stages.s must be a mapping"),
        ("stages:\n  s: {metrics: [1]}\n", "`stages.s.metrics` entries must be paths, got 1"),
    ],
)
def test_metrics_files_names_the_file_and_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(DvcFileError) as raised:
        metrics_files(text, "sub/dvc.yaml")
    assert (raised.value.path, raised.value.reason) == ("sub/dvc.yaml", reason)


def test_metrics_files_reads_top_level_stage_wdir_and_foreach_entries() -> None:
    text = (
        "metrics:\n- top.json\n- {cached.json: {cache: false}}\n"
        "stages:\n"
        "  a: {wdir: w, metrics: [m.json]}\n"
        "  b: {wdir: 3, metrics: [n.json]}\n"
        "  c: {foreach: [1, 2], do: {metrics: ['${item}.json', o.json]}}\n"
        "  d: {foreach: [1], do: 5}\n"
    )
    assert metrics_files(text, "sub/dvc.yaml") == [
        "sub/cached.json",
        "sub/n.json",
        "sub/o.json",
        "sub/top.json",
        "sub/w/m.json",
    ]
    assert metrics_files("", "dvc.yaml") == []


# --- Python params files (`params.py`), read without running them -----------------------------

PARAMS_PY = """\
import math

lr = 0.1
epochs: int = 10
layers = [64, 32]
tags = {"a"}
shape = (1, 2)
options = {**defaults, "depth": 3}
a = b = 1
computed = math.pi
pending: int
x.y = 3
self.top = 4
lr_bad = lr * 2


class Train:
    batch = 32
    nested = {"k": [1]}

    def __init__(self):
        self.momentum = 0.9
        local = 5
        self.seed = int("3")
        self.a, self.b = 1, 2

    def other(self):
        self.ignored = 1
"""


def test_python_params_are_the_literal_assignments() -> None:
    assert load_python_literals(PARAMS_PY) == {
        "lr": 0.1,
        "epochs": 10,
        "layers": [64, 32],
        "tags": {"a"},
        "shape": (1, 2),
        "options": {"depth": 3},
        "top": 4,
        "Train": {"batch": 32, "nested": {"k": [1]}, "momentum": 0.9},
    }
    flat = flatten_params(PARAMS_PY, "src/params.py")
    assert (flat["Train.batch"], flat["Train.momentum"], flat["options.depth"]) == (32, 0.9, 3)
    assert "Train.local" not in flat and "seed" not in str(sorted(flat))


def test_a_python_params_file_that_does_not_parse_names_the_file() -> None:
    with pytest.raises(DvcFileError, match=r"^params\.py: invalid Python: "):
        flatten_params("lr = (\n", "params.py")
    assert load_params_data("", "params.py") == {}


# --- error messages, YAML 1.2 scalars, edge cases of the readers ------------------------------

_FLOW = "while parsing a flow node expected the node content, but found '<stream end>'"
_AT = 'in "<unicode string>", line 1, column 5: a: [ ^'


def test_each_reader_names_the_file_and_why_it_does_not_load() -> None:
    def message(call: Callable[..., object], *args: object) -> str:
        with pytest.raises(DvcFileError) as caught:
            call(*args)
        return str(caught.value)

    for read in (parse_dvc_lock, metrics_files, stage_wdirs, parse_dvc_file):
        assert message(read, b"\xff", "sub/x") == "sub/x: not UTF-8 text (invalid start byte)"
        # The parser's message on one line, single spaces.
        assert message(read, "a: [", "sub/x") == f"sub/x: invalid YAML: {_FLOW} {_AT}"
        deep = "[" * 101 + "]" * 101
        assert message(read, deep, "sub/x") == (
            "sub/x: over a parsing limit: nested deeper than 100 levels"
        )
    assert message(stage_wdirs, "a: [").startswith("dvc.yaml: invalid YAML: ")
    assert message(flatten_params, "{", "PARAMS.JSON") == (
        "PARAMS.JSON: invalid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)"
    )
    assert message(flatten_params, "a = ", "p.toml") == (
        "p.toml: invalid TOML: Invalid value (at end of document)"
    )
    assert message(flatten_params, "a: [", "p.cfg") == f"p.cfg: invalid YAML: {_FLOW} {_AT}"
    assert message(flatten_params, b"\xff", "p.yaml") == (
        "p.yaml: not UTF-8 text (invalid start byte)"
    )
    assert message(flatten_params, "[" * 101 + "]" * 101, "p.json") == (
        "p.json: over a parsing limit: nested deeper than 100 levels"
    )
    assert message(flatten_params, "x = (", "P.PY").startswith("P.PY: invalid Python: ")
    assert flatten_params("lr = 0.1\n", "P.PY") == {"lr": 0.1}
    assert message(parse_dvc_file, "- a\n", "x.dvc") == (
        "x.dvc: expected a mapping with `outs:` at the top level"
    )
    assert message(parse_dvc_file, "outs: 5\n", "x.dvc") == (
        "x.dvc: `outs:` must be a list of outputs"
    )
    for path in ("", 5):
        outs = yaml.safe_dump({"outs": [{"path": path, "md5": "a"}]})
        assert message(parse_dvc_file, outs, "x.dvc") == "x.dvc: outs[0] has no `path`"
    # A broken file beside a lock is named with its folder.
    lock = "schema: '2.0'\nstages: {}\n"
    assert message(outputs, {"sub/dvc.lock": lock, "sub/dvc.yaml": "a: ["}).startswith(
        "sub/dvc.yaml: invalid YAML: "
    )
    assert message(outputs, {"sub/dvc.lock": "a: ["}).startswith("sub/dvc.lock: invalid YAML: ")


def test_yaml_12_ints_with_underscores_and_the_node_tree() -> None:
    assert load_yaml("a: 1__000\nb: 0x_f_f\nc: 0o1_7\nd: 1_\n") == {
        "a": 1000,
        "b": 255,
        "c": 15,
        "d": 1,
    }
    tree = compose_yaml("a: 1e-3\nb: yes\nc: 010\n")
    assert isinstance(tree, yaml.MappingNode)
    assert [(key.value, value.tag.rpartition(":")[2]) for key, value in tree.value] == [
        ("a", "float"),
        ("b", "str"),
        ("c", "int"),
    ]


def test_an_empty_lock_keeps_its_path_and_odd_dvc_yaml_gives_no_wdirs() -> None:
    assert parse_dvc_lock("", "sub/dvc.lock").path == "sub/dvc.lock"
    assert parse_dvc_lock("", "sub/dvc.lock").stages == {}
    assert stage_wdirs("- a\n") == {}
    assert stage_wdirs("stages: [a]\n") == {}
    # A file named only `.dvc` is no pointer file (it is DVC's own folder's name).
    pointer = "outs:\n- path: data\n  md5: abc\n"
    assert outputs({".dvc": pointer, "sub/.dvc": pointer}) == {}
    assert list(outputs({"sub/data.dvc": pointer})) == ["sub/data"]


def test_a_foreach_stage_s_wdir_under_do_places_its_outputs_and_params() -> None:
    stages = (
        "stages:\n  train:\n    foreach: [a, b]\n    do:\n      cmd: x\n      wdir: w\n"
        "  plain:\n    cmd: y\n"
    )
    assert stage_wdirs(stages) == {"train": "w"}
    lock = (
        "schema: '2.0'\nstages:\n  train@a:\n    cmd: x\n    params:\n      params.yaml:\n"
        "        lr: 1\n    outs:\n    - {path: m.pkl, md5: aa}\n"
    )
    assert list(outputs({"sub/dvc.lock": lock, "sub/dvc.yaml": stages})) == ["sub/w/m.pkl"]
    assert lock_params(parse_dvc_lock(lock, "sub/dvc.lock"), stage_wdirs(stages)) == {
        "sub/w/params.yaml": {"lr": 1}
    }


def test_a_null_param_that_disappears_is_reported() -> None:
    assert diff_params({"p.yaml": {"a": None}}, {"p.yaml": {}}) == [
        ParamChange("p.yaml", "a", None, None)
    ]
    assert diff_params({"p.yaml": {"a": None}}, {"p.yaml": {"a": None}}) == []


def test_a_listing_s_missing_relpath_or_md5_reads_as_empty() -> None:
    def fingerprint(entry: dict[str, object]) -> str | None:
        outs = yaml.safe_dump({"outs": [{"path": "d", "files": [entry]}]})
        return parse_dvc_file(outs, "d.dvc")["d"].fingerprint

    assert fingerprint({"relpath": "a"}) == fingerprint({"relpath": "a", "md5": ""})
    assert fingerprint({"md5": "b"}) == fingerprint({"relpath": "", "md5": "b"})
    assert fingerprint({"relpath": "a"}) != fingerprint({"relpath": "a", "md5": "None"})
    assert fingerprint({"md5": "b"}) != fingerprint({"relpath": "None", "md5": "b"})


def test_a_stage_whose_do_is_not_a_mapping_is_skipped_not_the_rest() -> None:
    content = (
        "stages:\n  odd:\n    foreach: [1]\n    do: 5\n"
        "  train:\n    wdir: w\n    metrics:\n    - m.json\n"
    )
    assert metrics_files(content, "sub/dvc.yaml") == ["sub/w/m.json"]
    assert metrics_files("stages:\n  t:\n    wdir: 5\n    metrics: [m.json]\n") == ["m.json"]


def test_an_absolute_output_path_is_kept_absolute() -> None:
    outs = "outs:\n- path: /data/x\n  md5: a\n- path: s3://b/../k\n  md5: b\n"
    assert sorted(parse_dvc_file(outs, "sub/x.dvc")) == ["/data/x", "s3://b/../k"]


def test_a_key_written_twice_is_refused_but_merged_keys_may_be_overridden() -> None:
    def message(content: str) -> str:
        with pytest.raises(DvcFileError) as caught:
            parse_dvc_lock(content, "x.lock")
        return str(caught.value)

    assert message("a: 1\nb:\n  c: 1\n  c: 2\n") == (
        'x.lock: invalid YAML: while constructing a mapping in "<unicode string>", line 3,'
        " column 3: c: 1 ^ found duplicate key 'c' in \"<unicode string>\", line 4, column 3:"
        " c: 2 ^"
    )
    # After a merge key too; two merge keys are no duplicate, and a merged key may be set again.
    assert "found duplicate key 'y'" in message("a: &a {x: 1}\nc:\n  <<: *a\n  y: 1\n  y: 2\n")
    merged = load_yaml("a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: *a\n  <<: *b\n  x: 3\n")
    assert merged["c"] == {"x": 3, "y": 2}
    # A key that is a list is refused by YAML itself, as invalid YAML.
    assert message("? [a]\n: 1\n").endswith(
        'found unhashable key in "<unicode string>", line 1, column 3: ? [a] ^'
    )


def test_python_params_as_bytes_and_over_the_limits() -> None:
    assert flatten_params(b"\xef\xbb\xbflr = 0.1\n", "params.py") == {"lr": 0.1}
    with pytest.raises(DvcFileError) as caught:
        flatten_params("x = [" + "1," * 100_001 + "]\n", "params.py")
    assert str(caught.value) == (
        "params.py: over a parsing limit: more than 100,000 nodes (keys, values and collections)"
    )
    # Nesting Python's parser itself cannot follow is a broken file, not a crash.
    with pytest.raises(DvcFileError) as caught:
        flatten_params("x = " + "-" * 100_000 + "1\n", "params.py")
    assert str(caught.value) == "params.py: invalid Python: nested too deeply"


def test_a_stage_that_is_not_a_mapping_sets_no_wdir() -> None:
    assert stage_wdirs("stages:\n  a: 5\n  b: {wdir: w}\n") == {"b": "w"}
