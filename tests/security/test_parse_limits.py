"""Hostile DVC, params and metrics files: bombs and deep nesting fail the check, never a worker."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot import create_app, sample
from bot.core import dvc
from bot.core.bounded_parse import MAX_BYTES, MAX_DEPTH, MAX_NODES
from bot.core.metrics import parse_metrics
from bot.emulator import GitHubEmulator
from bot.errors import DvcFileError, MetricsFileError
from bot.state import upload_tokens
from tests.support import Bot, pull_request_event

NODES = "more than 100,000 nodes"
DEEP = "nested deeper than 100 levels"
SIZE = "more than 10 MiB (10,485,760 bytes)"
SIZE_RE = re.escape(SIZE)


def alias_bomb(levels: int = 6) -> str:
    """The billion-laughs file of issue 9: each level lists the previous one nine times."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def expanded_nodes(levels: int) -> int:
    """Nodes of `alias_bomb(levels)` once every alias is replaced by what it stands for."""
    size = 10  # the list of nine scalars
    total = 2 + size  # the root mapping, the key l0, the list
    for _ in range(levels):
        size = 1 + 9 * size
        total += 1 + size
    return total


def test_the_bomb_is_small_and_expands_past_a_million_nodes() -> None:
    assert len(alias_bomb().encode()) <= 565
    assert expanded_nodes(6) > 1_000_000


# Each reader of a file from a PR head, and the error it raises for a broken file.
Reader = Callable[[str, str], Any]


def read_params(content: str, path: str) -> Any:
    return dvc.flatten_params(content, path)


def read_lock(content: str, path: str) -> Any:
    return dvc.parse_dvc_lock(content, path)


def read_pointer(content: str, path: str) -> Any:
    return dvc.parse_dvc_file(content, path)


def read_dvc_yaml(content: str, path: str) -> Any:
    return dvc.metrics_files(content, path)


YAML_READERS = [
    pytest.param(read_params, "params.yaml", DvcFileError, id="params.yaml"),
    pytest.param(read_lock, "dvc.lock", DvcFileError, id="dvc.lock"),
    pytest.param(read_pointer, "data/images.dvc", DvcFileError, id="dvc-pointer"),
    pytest.param(read_dvc_yaml, "dvc.yaml", DvcFileError, id="dvc.yaml"),
    pytest.param(parse_metrics, "metrics.yaml", MetricsFileError, id="metrics.yaml"),
]


@pytest.mark.parametrize(("read", "path", "error"), YAML_READERS)
def test_an_alias_bomb_is_refused_naming_the_file_and_the_node_limit(
    read: Reader, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        read(alias_bomb(), path)
    assert str(raised.value) == (
        f"{path}: over a parsing limit: {NODES} (keys, values and collections)"
        " after YAML alias expansion"
    )


@pytest.mark.parametrize(("read", "path", "error"), YAML_READERS)
def test_an_alias_inside_its_own_anchor_is_refused(
    read: Reader, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"^{path}: over a parsing limit: a YAML alias inside"):
        read("a: &a [1, [2, *a]]\n", path)


@pytest.mark.parametrize(("read", "path", "error"), YAML_READERS)
def test_200000_nested_brackets_are_refused_not_a_recursion_error(
    read: Reader, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        read("[" * 200_000, path)
    assert str(raised.value) == f"{path}: over a parsing limit: {DEEP}"


JSON_AND_TOML_READERS = [
    pytest.param(read_params, "params.json", DvcFileError, id="params.json"),
    pytest.param(parse_metrics, "metrics.json", MetricsFileError, id="metrics.json"),
    pytest.param(read_params, "params.toml", DvcFileError, id="params.toml"),
    pytest.param(parse_metrics, "metrics.toml", MetricsFileError, id="metrics.toml"),
]


@pytest.mark.parametrize(("read", "path", "error"), JSON_AND_TOML_READERS)
def test_deep_json_and_toml_are_refused_naming_the_file_and_the_depth(
    read: Reader, path: str, error: type[Exception]
) -> None:
    prefix = "a = " if path.endswith(".toml") else ""
    with pytest.raises(error) as raised:
        read(prefix + "[" * 200_000, path)
    assert str(raised.value) == f"{path}: over a parsing limit: {DEEP}"


@pytest.mark.parametrize("path", ["params.toml", "metrics.toml"])
def test_a_toml_key_of_100000_parts_is_refused_before_toml_parses_it(path: str) -> None:
    # tomllib's work grows with the square of a dotted key's parts: this one exhausts memory.
    read: Reader = read_params if path.startswith("params") else parse_metrics
    with pytest.raises((DvcFileError, MetricsFileError)) as raised:
        read("a" + ".b" * 100_000 + " = 1\n", path)
    assert str(raised.value) == f"{path}: over a parsing limit: {DEEP}"


# ---------------------------------------------------------------------------- boundaries


def under_a_key(path: str, levels: int) -> str:
    """A mapping whose key `a` holds lists nested so that the file is `levels` deep."""
    lists = "[" * (levels - 1) + "]" * (levels - 1)
    if path.endswith(".json"):
        return f'{{"lr": 1, "a": {lists}}}'
    if path.endswith(".toml"):
        return f"lr = 1\na = {lists}\n"
    return f"lr: 1\na: {lists}\n"


@pytest.mark.parametrize(
    ("read", "path", "error"),
    [
        pytest.param(read_params, path, DvcFileError, id=path)
        for path in ("params.yaml", "params.json", "params.toml")
    ]
    + [
        pytest.param(parse_metrics, path, MetricsFileError, id=path)
        for path in ("metrics.yaml", "metrics.json", "metrics.toml")
    ],
)
def test_exactly_100_levels_parse_and_101_do_not(
    read: Reader, path: str, error: type[Exception]
) -> None:
    values = read(under_a_key(path, MAX_DEPTH), path)
    assert values["lr"] == 1
    with pytest.raises(error) as raised:
        read(under_a_key(path, MAX_DEPTH + 1), path)
    assert str(raised.value) == f"{path}: over a parsing limit: {DEEP}"


def test_a_toml_key_of_exactly_100_parts_parses_and_101_does_not() -> None:
    key = ".".join(f"k{i}" for i in range(MAX_DEPTH))
    assert dvc.flatten_params(f"{key} = 1\n", "params.toml") == {key: 1}
    with pytest.raises(DvcFileError, match=DEEP):
        dvc.flatten_params(f"{key}.k = 1\n", "params.toml")


def test_alias_expansion_counts_towards_the_depth() -> None:
    # 49 levels anchored under the root mapping, used inside 50 more: 100 levels; 51 more: 101.
    anchored = "[" * 49 + "1" + "]" * 49
    ok = f"a: &x {anchored}\nb: " + "[" * 50 + "*x" + "]" * 50 + "\n"
    assert "a" in dvc.flatten_params(ok, "params.yaml")
    deeper = f"a: &x {anchored}\nb: " + "[" * 51 + "*x" + "]" * 51 + "\n"
    with pytest.raises(DvcFileError, match=f"params.yaml: over a parsing limit: {DEEP}"):
        dvc.flatten_params(deeper, "params.yaml")


def nodes_yaml(total: int) -> str:
    """A params.yaml of exactly `total` nodes after alias expansion (aliases do most of it)."""
    # root 1 + (x, its list of 9 scalars: 11) + (y, list: 2) + 10 per alias + (z, list: 2) + pad
    aliases, pad = divmod(total - 16, 10)
    return (
        "x: &x [0, 0, 0, 0, 0, 0, 0, 0, 0]\n"
        f"y: [{', '.join(['*x'] * aliases)}]\n"
        f"z: [{', '.join(['0'] * pad)}]\n"
    )


def test_exactly_100000_nodes_after_alias_expansion_parse_and_one_more_does_not() -> None:
    values = dvc.flatten_params(nodes_yaml(MAX_NODES), "params.yaml")
    assert len(values["y"]) == (MAX_NODES - 16) // 10
    with pytest.raises(DvcFileError, match=NODES):
        dvc.flatten_params(nodes_yaml(MAX_NODES + 1), "params.yaml")


@pytest.mark.parametrize(
    ("path", "head"),
    [("metrics.json", 3), ("metrics.toml", 3)],  # JSON: {, "a", [; TOML: root table, a, array
)
def test_exactly_100000_json_or_toml_nodes_parse_and_one_more_does_not(
    path: str, head: int
) -> None:
    def text(nodes: int) -> str:
        numbers = ",".join(["0"] * (nodes - head))
        return f'{{"a": [{numbers}]}}' if path.endswith("json") else f"a = [{numbers}]\n"

    assert parse_metrics(text(MAX_NODES), path) == {}  # DVC drops lists of numbers
    with pytest.raises(MetricsFileError, match=f"^{path}: over a parsing limit: {NODES}"):
        parse_metrics(text(MAX_NODES + 1), path)


def test_aliases_that_expand_past_10_mib_of_text_are_refused() -> None:
    # 1,000 characters anchored and used 10,484 more times, plus the keys a, b, c and a pad.
    def text(pad: int) -> str:
        return f"a: &s {'x' * 1000}\nb: [{', '.join(['*s'] * 10_484)}]\nc: {'y' * pad}\n"

    exact = MAX_BYTES - 3 - 10_485 * 1000
    assert len(text(exact)) < 100_000
    assert dvc.flatten_params(text(exact), "params.yaml")["c"] == "y" * exact
    with pytest.raises(DvcFileError, match=r"YAML aliases expand it to more than 10 MiB"):
        dvc.flatten_params(text(exact + 1), "params.yaml")


def test_a_json_metrics_file_of_exactly_10_mib_parses_and_one_byte_more_does_not() -> None:
    def text(size: int) -> bytes:
        return b'{"note": "' + b"x" * (size - 12) + b'"}'

    assert len(text(MAX_BYTES)) == MAX_BYTES
    assert parse_metrics(text(MAX_BYTES), "metrics.json") == {"note": "x" * (MAX_BYTES - 12)}
    with pytest.raises(MetricsFileError) as raised:
        parse_metrics(text(MAX_BYTES + 1), "metrics.json")
    assert str(raised.value) == f"metrics.json: over a parsing limit: 10,485,761 bytes, {SIZE}"


def test_a_yaml_params_file_of_exactly_10_mib_parses_and_one_byte_more_does_not() -> None:
    def text(size: int) -> bytes:
        # A block scalar: PyYAML reads it fastest (about 2 s for 10 MiB).
        return b"lr: 0.1\nnote: |\n  " + b"x" * (size - 19) + b"\n"

    assert len(text(MAX_BYTES)) == MAX_BYTES
    assert dvc.flatten_params(text(MAX_BYTES), "params.yaml")["lr"] == 0.1
    with pytest.raises(DvcFileError, match=f"^params.yaml: over a parsing limit: .*{SIZE_RE}"):
        dvc.flatten_params(text(MAX_BYTES + 1), "params.yaml")


def test_a_toml_file_over_10_mib_is_refused() -> None:
    text = "lr = 0.1\n# " + "x" * MAX_BYTES + "\n"
    with pytest.raises(DvcFileError, match=f"^params.toml: over a parsing limit: .*{SIZE_RE}"):
        dvc.flatten_params(text, "params.toml")


# ---------------------------------------------------------------------------- whole flow

REPO = "octo/model"


@pytest.fixture
def repo(emulator: GitHubEmulator) -> str:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    return REPO


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("params.yaml", alias_bomb(), f"params.yaml: over a parsing limit: {NODES}"),
        ("dvc.lock", alias_bomb(), f"dvc.lock: over a parsing limit: {NODES}"),
        ("metrics.json", "[" * 200_000, f"metrics.json: over a parsing limit: {DEEP}"),
    ],
)
def test_a_hostile_file_in_a_pr_fails_mlgate_quality_with_its_name_and_limit(
    bot: Bot, emulator: GitHubEmulator, repo: str, path: str, content: str, message: str
) -> None:
    # metrics.json alone triggers nothing: the PR also changes params.yaml, as a real one would.
    files = {path: content}
    if path == "metrics.json":
        files["params.yaml"] = sample.params_yaml({"epochs": 31, "learning_rate": 0.1})
    emulator.repo(REPO).commit("feature", files, "hostile", author="mallory")
    number = int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="mallory", title="t")[
            "number"
        ]
    )
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))

    head = emulator.pull_request(REPO, number)["head"]["sha"]
    quality = [r for r in emulator.check_runs(REPO, head) if r["name"] == "mlgate/quality"]
    assert quality, "the job crashed before it could conclude mlgate/quality"
    assert (quality[-1]["status"], quality[-1]["conclusion"]) == ("completed", "failure")
    assert message in quality[-1]["output"]["title"] + quality[-1]["output"]["summary"]
    assert message in emulator.comments(REPO, number)[0]["body"]


@pytest.mark.parametrize(
    ("path", "body", "limit"),
    [("metrics.yaml", alias_bomb(), NODES), ("metrics.json", "[" * 200_000, DEEP)],
)
def test_an_uploaded_bomb_is_a_400_naming_the_file_and_the_limit(
    env: dict[str, str], redis_conn: redis.Redis, path: str, body: str, limit: str
) -> None:
    token = upload_tokens.create(redis_conn, REPO, time.time())
    with create_app(env).test_client() as client:
        response = client.post(
            "/api/v1/metrics",
            query_string={"repo": REPO, "sha": "6fd84f4c" * 5, "run": "1", "path": path},
            data=body.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(
        f"malformed metrics: {path}: over a parsing limit: {limit}"
    )


def test_python_params_and_metrics_are_parsed_under_the_same_limits() -> None:
    from bot.core.dvc import flatten_params
    from bot.core.metrics import parse_metrics

    deep = "x = " + "[" * 300 + "]" * 300 + "\n"
    with pytest.raises(DvcFileError, match=r"params\.py: invalid Python"):
        flatten_params(deep, "params.py")
    wide = "x = [" + ", ".join(["0"] * 100_001) + "]\n"
    with pytest.raises(MetricsFileError, match=r"metrics\.py: over a parsing limit"):
        parse_metrics(wide, "metrics.py")
    assert flatten_params("lr = 0.1\nclass Train:\n    epochs = 3\n", "params.py") == {
        "lr": 0.1,
        "Train.epochs": 3,
    }
