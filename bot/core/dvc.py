"""Reading DVC's own files: `.dvc` pointers, `dvc.lock`, `dvc.yaml` and params, as DVC does."""

from __future__ import annotations

import ast
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from bot.core import bounded_parse
from bot.errors import DvcFileError, FileLimitExceeded

ParamValue = Any  # a YAML/JSON/TOML leaf: str, int, float, bool, None or a list
ChangeKind = Literal["added", "removed", "modified"]

# dvc.lock schemas DVC writes: '2.0' since DVC 2.0; DVC 1.x wrote stages at the top level.
LOCK_SCHEMA = "2.0"


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars.

    DVC parses YAML with ruamel.yaml (`dvc/utils/serialize/_yaml.py`, `YAML(typ="safe")`),
    which follows YAML 1.2: `1e-3` is a float and `yes`/`no`/`on`/`off` are strings. PyYAML
    follows YAML 1.1 and would read `1e-3` as the string "1e-3" (treeverse/dvc#5971).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # ruamel.yaml refuses a key written twice in one mapping (`allow_duplicate_keys` is
        # off), so DVC reads such a file as corrupted; PyYAML would keep the last value.
        # Keys a `<<` merge brings in may be overridden, so only the node's own are checked.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _YAML_TAG + "merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YAML_TAG = "tag:yaml.org,2002:"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {_YAML_TAG + "bool", _YAML_TAG + "int", _YAML_TAG + "float"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _YAML_TAG + "bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Yaml12Loader.add_implicit_resolver(
    _YAML_TAG + "int",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    _YAML_TAG + "float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_yaml12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # YAML 1.2 has no sexagesimal ints and a leading 0 is decimal, unlike PyYAML's 1.1 rules.
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


_Yaml12Loader.add_constructor(_YAML_TAG + "int", _construct_yaml12_int)


def _text(content: str | bytes) -> str:
    return content.decode("utf-8-sig") if isinstance(content, bytes) else content


def load_yaml(content: str | bytes) -> Any:
    """Parse YAML the way DVC does (YAML 1.2 scalars); raises `yaml.YAMLError`, and
    `FileLimitExceeded` over a parsing limit (size, depth, nodes after alias expansion)."""
    return bounded_parse.load_yaml(content, _Yaml12Loader)


def compose_yaml(content: str | bytes) -> yaml.Node | None:
    """The YAML node tree (with line marks) under the same resolver and limits as `load_yaml`."""
    return bounded_parse.compose_yaml(content, _Yaml12Loader)


def _load_yaml_file(content: str | bytes, path: str) -> Any:
    try:
        return load_yaml(content)
    except UnicodeDecodeError as exc:
        raise DvcFileError(path, f"not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise DvcFileError(path, f"invalid YAML: {_one_line(str(exc))}") from exc
    except FileLimitExceeded as exc:
        raise DvcFileError(path, str(exc)) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Output:
    """One DVC-tracked output: its hash (`….dir` for a directory), size in bytes, file count.

    `fingerprint` is set only for a directory that dvc.lock lists file by file (`files:`),
    where DVC writes no `.dir` hash; it is our own digest of that listing, used to notice
    changes, never shown as a DVC hash.
    """

    path: str
    md5: str | None
    size: int | None
    nfiles: int | None
    fingerprint: str | None = None


@dataclass(frozen=True)
class DataChange:
    """An output added, removed or modified (hash, size or file count) between two commits."""

    path: str
    kind: ChangeKind
    old: Output | None
    new: Output | None

    @property
    def size_delta(self) -> int | None:
        old = 0 if self.old is None else self.old.size
        new = 0 if self.new is None else self.new.size
        return None if old is None or new is None else new - old

    @property
    def nfiles_delta(self) -> int | None:
        if self.old is None or self.new is None:
            return None
        if self.old.nfiles is None or self.new.nfiles is None:
            return None
        return self.new.nfiles - self.old.nfiles


@dataclass(frozen=True)
class ParamChange:
    """A parameter whose value differs; `old`/`new` is None where the key is absent."""

    file: str
    key: str
    old: ParamValue
    new: ParamValue


@dataclass(frozen=True)
class Stage:
    """A stage as recorded in dvc.lock; paths are as written there (relative to its wdir)."""

    name: str
    cmd: str | list[str] | None
    deps: tuple[Output, ...]
    params: Mapping[str, Mapping[str, ParamValue]]
    outs: tuple[Output, ...]


@dataclass(frozen=True)
class DvcLock:
    """A parsed dvc.lock."""

    path: str
    stages: Mapping[str, Stage]


# ---------------------------------------------------------------------------- outputs


def _join(base_dir: str, path: str) -> str:
    # Remote outputs (s3://…) are not relative to the file that names them; an absolute path is
    # not either (posixpath.join keeps it whole).
    if "://" in path:
        return path
    return posixpath.normpath(posixpath.join(base_dir, path))


def _int_field(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DvcFileError(where, f"`{key}` must be an integer, got {value!r}")
    return value


def _parse_out(entry: Any, base_dir: str, file: str, where: str) -> Output:
    if not isinstance(entry, Mapping):
        raise DvcFileError(file, f"{where} must be a mapping with `path`, got {entry!r}")
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise DvcFileError(file, f"{where} has no `path`")
    # DVC 3 writes `hash: md5` beside `md5:`; older files have `md5:` alone; cloud outputs
    # carry `etag` (dvc/output.py hash names).
    digest = entry.get("md5", entry.get("etag", entry.get("checksum")))
    if digest is not None and not isinstance(digest, str):
        digest = str(digest)
    size = _int_field(entry, "size", file)
    nfiles = _int_field(entry, "nfiles", file)
    fingerprint = None
    files = entry.get("files")
    if digest is None and isinstance(files, list):
        # DVC 3 may list a directory's files inline instead of writing a `.dir` hash.
        listing = sorted(
            (str(f.get("relpath", "")), str(f.get("md5", "")), f.get("size"))
            for f in files
            if isinstance(f, Mapping)
        )
        fingerprint = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
        nfiles = len(listing) if nfiles is None else nfiles
        sizes = [s for _, _, s in listing if isinstance(s, int)]
        if size is None and listing and len(sizes) == len(listing):
            size = sum(sizes)
    return Output(_join(base_dir, path), digest, size, nfiles, fingerprint)


def parse_dvc_file(content: str | bytes, path: str) -> dict[str, Output]:
    """Outputs of one `.dvc` file, keyed by repository path (outs are relative to its folder)."""
    data = _load_yaml_file(content, path)
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "expected a mapping with `outs:` at the top level")
    outs = data.get("outs")
    if not isinstance(outs, list):
        raise DvcFileError(path, "`outs:` must be a list of outputs")
    base_dir = posixpath.dirname(path)
    wdir = data.get("wdir")
    if isinstance(wdir, str):
        base_dir = _join(base_dir, wdir)
    result: dict[str, Output] = {}
    for index, entry in enumerate(outs):
        out = _parse_out(entry, base_dir, path, f"outs[{index}]")
        result[out.path] = out
    return result


def _parse_params(raw: Any, file: str, stage: str) -> dict[str, dict[str, ParamValue]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DvcFileError(file, f"stages.{stage}.params must map params files to values")
    params: dict[str, dict[str, ParamValue]] = {}
    for params_file, values in raw.items():
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise DvcFileError(file, f"stages.{stage}.params.{params_file} must be a mapping")
        # DVC writes `prepare.seed: 1` for leaf params and nested mappings for whole groups.
        params[str(params_file)] = flatten(values)
    return params


def parse_dvc_lock(content: str | bytes, path: str = "dvc.lock") -> DvcLock:
    """Parse dvc.lock (schema '2.0', or DVC 1's stages-at-top-level form)."""
    data = _load_yaml_file(content, path)
    if data is None:
        return DvcLock(path, {})
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "expected a mapping at the top level")
    if "schema" in data:
        if str(data["schema"]) != LOCK_SCHEMA:
            raise DvcFileError(
                path, f"unsupported schema {data['schema']!r}; expected '{LOCK_SCHEMA}'"
            )
        raw_stages = data.get("stages") or {}
    else:
        raw_stages = data
    if not isinstance(raw_stages, Mapping):
        raise DvcFileError(path, "`stages:` must map stage names to stages")
    stages: dict[str, Stage] = {}
    for name, raw in raw_stages.items():
        name = str(name)
        if not isinstance(raw, Mapping):
            raise DvcFileError(path, f"stages.{name} must be a mapping")
        deps = raw.get("deps") or []
        outs = raw.get("outs") or []
        if not isinstance(deps, list) or not isinstance(outs, list):
            raise DvcFileError(path, f"stages.{name}: `deps` and `outs` must be lists")
        cmd = raw.get("cmd")
        stages[name] = Stage(
            name=name,
            cmd=cmd if isinstance(cmd, str | list) else None,
            deps=tuple(
                _parse_out(d, "", path, f"stages.{name}.deps[{i}]") for i, d in enumerate(deps)
            ),
            params=_parse_params(raw.get("params"), path, name),
            outs=tuple(
                _parse_out(o, "", path, f"stages.{name}.outs[{i}]") for i, o in enumerate(outs)
            ),
        )
    return DvcLock(path, stages)


def stage_wdirs(content: str | bytes, path: str = "dvc.yaml") -> dict[str, str]:
    """`wdir` of each stage in dvc.yaml that sets one (paths in dvc.lock are relative to it);
    a `foreach` stage sets it under `do:`, for every `name@key` stage it makes."""
    data = _load_yaml_file(content, path)
    stages = data.get("stages") if isinstance(data, Mapping) else None
    if not isinstance(stages, Mapping):
        return {}
    wdirs: dict[str, str] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage) if isinstance(stage, Mapping) else None
        if isinstance(body, Mapping) and isinstance(body.get("wdir"), str):
            wdirs[str(name)] = body["wdir"]
    return wdirs


def outputs(files: Mapping[str, str | bytes]) -> dict[str, Output]:
    """Outputs named by a set of files `{repo path: content}`: `*.dvc` files and `dvc.lock`.

    A `dvc.yaml` beside a `dvc.lock` supplies stage `wdir`s; other files are ignored, so a
    caller may pass every file it fetched. Files are read in path order, so an output named
    twice resolves the same way every time.
    """
    result: dict[str, Output] = {}
    for path in sorted(files):
        name = posixpath.basename(path)
        if name.endswith(".dvc") and name != ".dvc":
            result.update(parse_dvc_file(files[path], path))
        elif name == "dvc.lock":
            folder = posixpath.dirname(path)
            dvc_yaml = posixpath.join(folder, "dvc.yaml")
            wdirs = stage_wdirs(files[dvc_yaml], dvc_yaml) if dvc_yaml in files else {}
            for stage in parse_dvc_lock(files[path], path).stages.values():
                base = _join(folder, wdirs.get(stage.name.split("@")[0], "."))
                for out in stage.outs:
                    moved = Output(
                        _join(base, out.path), out.md5, out.size, out.nfiles, out.fingerprint
                    )
                    result[moved.path] = moved
    return result


def _changed(old: Output, new: Output) -> bool:
    return (old.md5, old.size, old.nfiles, old.fingerprint) != (
        new.md5,
        new.size,
        new.nfiles,
        new.fingerprint,
    )


def diff_outputs(base: Mapping[str, Output], head: Mapping[str, Output]) -> list[DataChange]:
    """Outputs added, removed or modified (hash, size or file count) from base to head."""
    changes: list[DataChange] = []
    for path in sorted(set(base) | set(head)):
        old, new = base.get(path), head.get(path)
        if old is None and new is not None:
            changes.append(DataChange(path, "added", None, new))
        elif new is None and old is not None:
            changes.append(DataChange(path, "removed", old, None))
        elif old is not None and new is not None and _changed(old, new):
            changes.append(DataChange(path, "modified", old, new))
    return changes


# ---------------------------------------------------------------------------- params


def flatten(data: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings joined with `.` (DVC's `dvc/utils/flatten.py`, reducer "dot").

    Leaves are kept as they are, lists included; an empty mapping is kept as a value so a
    group that became empty still shows as a change.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _python_value(node: ast.expr) -> Any:
    if isinstance(node, ast.Dict):  # `**other` entries (no key) are left out, as DVC does
        return {
            ast.literal_eval(k): ast.literal_eval(v)
            for k, v in zip(node.keys, node.values, strict=True)
            if k is not None
        }
    return ast.literal_eval(node)  # lists, sets and tuples of literals too


def _python_name(target: ast.expr, self_only: bool) -> str:
    if isinstance(target, ast.Name) and not self_only:
        return target.id
    if (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    ):
        return target.attr
    raise AttributeError(target)


def _python_body(body: Sequence[ast.stmt], self_only: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for statement in body:
        try:
            if isinstance(statement, ast.Assign | ast.AnnAssign):
                targets = (
                    [statement.target]
                    if isinstance(statement, ast.AnnAssign)
                    else statement.targets
                )
                if len(targets) != 1 or statement.value is None:
                    raise AttributeError(targets)
                result[_python_name(targets[0], self_only)] = _python_value(statement.value)
            elif isinstance(statement, ast.ClassDef):
                result[statement.name] = _python_body(statement.body)
            elif isinstance(statement, ast.FunctionDef) and statement.name == "__init__":
                result.update(_python_body(statement.body, self_only=True))
        except (ValueError, AttributeError, TypeError):
            continue  # not a literal: DVC skips it too
    return result


def load_python_literals(text: str) -> dict[str, Any]:
    """The literal assignments of a Python file, as DVC reads `.py` params and metrics.

    Nothing is executed: module-level `name = literal`, class bodies as nested mappings and
    `self.name = literal` in `__init__` (`dvc/utils/serialize/_py.py`); raises SyntaxError.
    """
    bounded_parse.check_size(text)
    try:
        tree = ast.parse(text)
    except (RecursionError, MemoryError) as exc:  # hostile nesting: a file, not a crash
        raise SyntaxError("nested too deeply") from exc
    data = _python_body(tree.body)
    bounded_parse.check_tree(data)
    return data


def load_params_data(content: str | bytes, path: str) -> Any:
    """A params file parsed as it is written (YAML, JSON or TOML by extension); None if empty."""
    # DVC picks the parser by extension and falls back to YAML (dvc/utils/serialize LOADERS).
    ext = posixpath.splitext(path)[1].lower()
    try:
        if ext == ".json":
            data: Any = bounded_parse.load_json(content)
        elif ext == ".toml":
            data = bounded_parse.load_toml(content)
        elif ext == ".py":
            data = load_python_literals(_text(content))
        else:
            data = load_yaml(content)
    except UnicodeDecodeError as exc:
        raise DvcFileError(path, f"not UTF-8 text ({exc.reason})") from exc
    except (ValueError, SyntaxError, yaml.YAMLError) as exc:  # JSON and TOML errors too
        kind = {".json": "JSON", ".toml": "TOML", ".py": "Python"}.get(ext, "YAML")
        raise DvcFileError(path, f"invalid {kind}: {_one_line(str(exc))}") from exc
    except FileLimitExceeded as exc:
        raise DvcFileError(path, str(exc)) from exc
    return data


def flatten_params(content: str | bytes, path: str) -> dict[str, ParamValue]:
    """All parameters of a params file (YAML, JSON or TOML by extension), flattened with `.`."""
    data = load_params_data(content, path)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "expected a mapping of parameters at the top level")
    return flatten(data)


def lock_params(lock: DvcLock, wdirs: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Parameters recorded in dvc.lock: `{params file (repo path): {dotted key: value}}`."""
    folder = posixpath.dirname(lock.path)
    result: dict[str, dict[str, Any]] = {}
    for name in sorted(lock.stages):
        base = _join(folder, (wdirs or {}).get(name.split("@")[0], "."))
        for file, values in lock.stages[name].params.items():
            result.setdefault(_join(base, file), {}).update(values)
    return result


_MISSING = object()


def diff_params(
    base: Mapping[str, Mapping[str, ParamValue]], head: Mapping[str, Mapping[str, ParamValue]]
) -> list[ParamChange]:
    """Parameters whose value differs, sorted by file and key; absent keys read as None.

    Same rule as `dvc params diff` (dvc/utils/diff.py `_diff_vals`): equal values are not
    reported; a key present on one side only is reported with None on the other.
    """
    changes: list[ParamChange] = []
    for file in sorted(set(base) | set(head)):
        old_values, new_values = base.get(file, {}), head.get(file, {})
        for key in sorted(set(old_values) | set(new_values)):
            old = old_values.get(key, _MISSING)
            new = new_values.get(key, _MISSING)
            if old is not _MISSING and new is not _MISSING and _same(old, new):
                continue
            changes.append(
                ParamChange(
                    file,
                    key,
                    None if old is _MISSING else old,
                    None if new is _MISSING else new,
                )
            )
    return changes


def _same(old: Any, new: Any) -> bool:
    # Python says 1 == True; a param that went from 1 to true did change. 1 == 1.0 stays equal.
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    return bool(old == new)


# ---------------------------------------------------------------------------- dvc.yaml


def _metric_entries(entries: Any, file: str, where: str) -> Iterable[str]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DvcFileError(file, f"`{where}` must be a list")
    paths: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            paths.append(entry)
        elif isinstance(entry, Mapping) and len(entry) == 1:
            # `- metrics.json: {cache: false}`
            paths.append(str(next(iter(entry))))
        else:
            raise DvcFileError(file, f"`{where}` entries must be paths, got {entry!r}")
    return paths


def metrics_files(content: str | bytes, path: str = "dvc.yaml") -> list[str]:
    """Metrics files declared in a dvc.yaml, as repository paths, sorted and de-duplicated.

    Both the top-level `metrics:` list (relative to the dvc.yaml's folder, as in
    `dvc/repo/metrics/show.py` `_collect_top_level_metrics`) and each stage's `metrics:`
    outputs (relative to the stage's `wdir`). Templated paths (`${…}`, from `foreach` or
    `vars`) cannot be resolved without the params and are left out.
    """
    data = _load_yaml_file(content, path)
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise DvcFileError(path, "expected a mapping at the top level")
    folder = posixpath.dirname(path)
    found = {_join(folder, p) for p in _metric_entries(data.get("metrics"), path, "metrics")}
    stages = data.get("stages") or {}
    if not isinstance(stages, Mapping):
        raise DvcFileError(path, "`stages:` must map stage names to stages")
    for name, stage in stages.items():
        if not isinstance(stage, Mapping):
            raise DvcFileError(path, f"stages.{name} must be a mapping")
        body = stage.get("do", stage)  # a `foreach`/`matrix` stage keeps its body under `do:`
        if not isinstance(body, Mapping):
            continue
        wdir = body.get("wdir")
        base = _join(folder, wdir if isinstance(wdir, str) else ".")
        for entry in _metric_entries(body.get("metrics"), path, f"stages.{name}.metrics"):
            found.add(_join(base, entry))
    return sorted(p for p in found if "${" not in p)
