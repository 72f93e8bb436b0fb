"""DVC's `${…}` templating of dvc.yaml: `vars`, params.yaml, `foreach` and `matrix` stages."""

from __future__ import annotations

import copy
import itertools
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.dvc import load_params_data
from bot.errors import DvcFileError

# Each rule below follows `dvc/parsing/` of DVC 3 (`__init__.py`, `context.py`,
# `interpolate.py`); names in comments are theirs.

# KEYCRE: `${…}` not preceded by a backslash; `\${` is an escaped, literal `${`.
_TEMPLATE = re.compile(r"(?<!\\)\$\{(?P<inner>.*?)\}")
# The pyparsing grammar of `get_parser`: a name, then `.name` or `[name]` parts.
_EXPRESSION = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[[^.\[\]]+\])*")
_PRIMITIVES = (int, float, str, bytes, bool)  # PRIMITIVES in context.py
DEFAULT_PARAMS_FILE = "params.yaml"
# A dvc.yaml comes from an untrusted PR head: a `matrix` of a few lists multiplies out, so the
# stages one file may generate are capped (DVC has no cap; no real pipeline comes near it).
MAX_GENERATED_STAGES = 10_000

Reader = Callable[[str], bytes | None]


def has_template(value: Any) -> bool:
    """Whether a string holds a `${…}` to fill (`is_interpolated_string`)."""
    return isinstance(value, str) and _TEMPLATE.search(value) is not None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a YAML value, mapping keys included (`recurse` visits both)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)


def check_syntax(value: Any, path: str, where: str) -> None:
    """Refuse a `${…}` whose inside is not a name path (`check_recursive_parse_errors`)."""
    for text in _strings(value):
        for match in _TEMPLATE.finditer(text):
            if _EXPRESSION.fullmatch(match["inner"]) is None:
                raise DvcFileError(
                    path, f"failed to parse '{where}': `${{{match['inner']}}}` is not a name"
                )


def _to_str(value: Any) -> str:
    # to_str: booleans as YAML writes them; everything else as Python prints it.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Context:
    """The names a dvc.yaml can use: params.yaml beside it, then its `vars`, merged."""

    data: dict[str, Any] = field(default_factory=dict)
    # Files loaded so far and the keys taken from each (None: the whole file).
    imports: dict[str, list[str] | None] = field(default_factory=dict)

    def clone(self) -> Context:
        return Context(copy.deepcopy(self.data), copy.deepcopy(self.imports))

    def merge(self, update: Mapping[str, Any], source: str, path: str) -> None:
        """Add `update`; mappings merge key by key, any other name defined twice is an error."""
        _merge(self.data, update, source, path)

    def load_file(self, read: Reader, item: str, wdir: str, dvc_yaml: str) -> None:
        """`vars` entry `file[:key,…]` (relative to `wdir`), as `Context.merge_from`."""
        name, _, keys_text = item.partition(":")
        path = posixpath.normpath(posixpath.join(wdir, name))
        keys = [k for k in keys_text.split(",") if k] if keys_text else None
        if path in self.imports:
            loaded = self.imports[path]
            if not keys and loaded is None:
                return  # the same whole file named twice is allowed
            if not keys or loaded is None or set(keys) & set(loaded):
                raise DvcFileError(dvc_yaml, f"cannot load '{item}': already loaded")
        content = read(path)
        if content is None:
            raise DvcFileError(dvc_yaml, f"failed to parse 'vars': '{path}' does not exist")
        # As DVC's loaders (`parse_yaml(...) or {}`): an empty file has no names.
        data = load_params_data(content, path) or {}
        if not isinstance(data, Mapping):
            raise DvcFileError(
                dvc_yaml,
                f"failed to parse 'vars': expected a dictionary, got "
                f"'{type(data).__name__}' in file '{path}'",
            )
        if keys is not None:
            missing = [k for k in keys if k not in data]
            if missing:
                raise DvcFileError(
                    dvc_yaml, f"failed to parse 'vars': could not find '{missing[0]}' in '{path}'"
                )
            data = {k: data[k] for k in keys}
        self.merge(data, path, dvc_yaml)
        if path not in self.imports:
            self.imports[path] = keys
        elif keys:
            self.imports[path] = [*(self.imports[path] or []), *keys]

    def load_vars(self, read: Reader, entries: Any, wdir: str, dvc_yaml: str, where: str) -> None:
        """A `vars:` list: file names and literal mappings, in order (`load_from_vars`)."""
        if entries is None:
            return
        if not isinstance(entries, list):
            raise DvcFileError(dvc_yaml, f"'{where}' must be a list")
        for text in _strings(entries):
            if has_template(text):
                raise DvcFileError(
                    dvc_yaml, f"failed to parse '{where}': interpolating is not allowed"
                )
        for index, entry in enumerate(entries):
            if isinstance(entry, str):
                self.load_file(read, entry, wdir, dvc_yaml)
            elif isinstance(entry, Mapping):
                self.merge(entry, f"{where}[{index}]", dvc_yaml)
            else:
                raise DvcFileError(dvc_yaml, f"'{where}' entries must be files or mappings")

    def select(self, expression: str, dvc_yaml: str, where: str) -> Any:
        """The value an expression names: `a.b`, `a[0]` (`Context.select`)."""
        node: Any = self.data
        for part in expression.replace("[", ".").replace("]", "").split("."):
            index = part.strip()
            try:
                if isinstance(node, Mapping):
                    node = node[index]
                elif isinstance(node, list):
                    node = node[int(index)]
                else:
                    raise LookupError(index)
            except (LookupError, ValueError):
                raise DvcFileError(
                    dvc_yaml, f"failed to parse '{where}': Could not find '{expression}'"
                ) from None
        return node

    def resolve(self, value: Any, dvc_yaml: str, where: str, key: str | None = None) -> Any:
        """`value` with every `${…}` filled, keys of mappings included (`Context.resolve`)."""
        if isinstance(value, str):
            return self.resolve_str(value, dvc_yaml, where, key)
        if isinstance(value, Mapping):
            return {
                self.resolve(k, dvc_yaml, where, key): self.resolve(v, dvc_yaml, where, key)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(v, dvc_yaml, where, key) for v in value]
        return value

    def resolve_str(self, text: str, dvc_yaml: str, where: str, key: str | None = None) -> Any:
        matches = list(_TEMPLATE.finditer(text))
        if len(matches) == 1 and matches[0].group(0) == text:
            # "${flag}" alone keeps the value's type: a bool stays a bool, a list a list.
            value = self.select(matches[0]["inner"], dvc_yaml, where)
            _validate(value, key, dvc_yaml, where)
            return value
        parts: list[str] = []
        index = 0
        for match in matches:
            value = self.select(match["inner"], dvc_yaml, where)
            _validate(value, key, dvc_yaml, where)
            parts.append(text[index : match.start()] + _to_str(value))
            index = match.end()
        parts.append(text[index:])
        return "".join(parts).replace("\\${", "${")


def _validate(value: Any, key: str | None, dvc_yaml: str, where: str) -> None:
    # validate_value: only `foreach` data and a whole-mapping `cmd` may be non-primitive;
    # top-level sections resolve with no key, so they are not checked.
    if value is None or isinstance(value, _PRIMITIVES) or key is None or "foreach" in key:
        return
    if isinstance(value, dict) and key == "cmd":
        return
    raise DvcFileError(
        dvc_yaml,
        f"failed to parse '{where}': Cannot interpolate data of type '{type(value).__name__}'",
    )


def _merge(into: dict[str, Any], update: Mapping[str, Any], source: str, path: str) -> None:
    for key, value in update.items():
        if isinstance(into.get(key), dict) and isinstance(value, Mapping):
            _merge(into[key], value, source, path)
        elif key in into:
            raise DvcFileError(
                path, f"failed to parse 'vars': cannot redefine '{key}' from '{source}'"
            )
        else:
            into[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value


def root_context(read: Reader, dvc_yaml: str, data: Mapping[str, Any]) -> Context:
    """params.yaml beside the dvc.yaml (when there is one), then its top-level `vars`."""
    folder = posixpath.dirname(dvc_yaml)
    context = Context()
    default = posixpath.normpath(posixpath.join(folder, DEFAULT_PARAMS_FILE))
    if read(default) is not None:
        context.load_file(read, DEFAULT_PARAMS_FILE, folder, dvc_yaml)
    context.load_vars(read, data.get("vars"), folder, dvc_yaml, "vars")
    return context


def _is_composite(value: Any) -> bool:
    return isinstance(value, Mapping | list)


def _foreach_items(iterable: Any, dvc_yaml: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(generated key, names it adds) of each `foreach` iteration (`normalized_iterable`)."""
    if isinstance(iterable, Mapping):
        return [(_to_str(k), {"item": v, "key": _to_str(k)}) for k, v in iterable.items()]
    if isinstance(iterable, list):
        if any(_is_composite(v) for v in iterable):
            return [(_to_str(i), {"item": v}) for i, v in enumerate(iterable)]
        return [(_to_str(v), {"item": v}) for v in iterable]
    raise DvcFileError(
        dvc_yaml,
        f"failed to resolve '{where}' in '{dvc_yaml}': expected list/dictionary, "
        f"got {type(iterable).__name__}",
    )


def _matrix_items(matrix: Any, dvc_yaml: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(generated key, names it adds) of each combination of a `matrix` stage."""
    if not isinstance(matrix, Mapping):
        raise DvcFileError(dvc_yaml, f"'{where}' must map names to lists")
    lists: list[list[tuple[int, Any]]] = []
    count = 1
    for name, values in matrix.items():
        if not isinstance(values, list):
            raise DvcFileError(dvc_yaml, f"'{where}.{name}' must be a list")
        lists.append(list(enumerate(values)))
        count *= len(values)
    if count > MAX_GENERATED_STAGES:
        raise DvcFileError(
            dvc_yaml,
            f"'{where}' generates {count:,} stages; mlgate reads at most "
            f"{MAX_GENERATED_STAGES:,} per stage",
        )
    items: list[tuple[str, dict[str, Any]]] = []
    for combination in itertools.product(*lists):
        item = {}
        fragments = []
        for name, (index, value) in zip(matrix, combination, strict=True):
            item[name] = value
            fragments.append(f"{name}{index}" if _is_composite(value) else _to_str(value))
        key = "-".join(fragments)
        items.append((key, {"item": item, "key": key}))
    return items


@dataclass(frozen=True)
class ResolvedStage:
    """One stage after templating: its name (`group@key` when generated) and definition."""

    name: str
    definition: Mapping[str, Any]
    wdir: str  # repository folder its paths are relative to


def _resolve_one(
    read: Reader,
    context: Context,
    name: str,
    definition: Mapping[str, Any],
    dvc_yaml: str,
) -> ResolvedStage:
    """EntryDefinition.resolve_stage: wdir first, then stage `vars`, then every key."""
    folder = posixpath.dirname(dvc_yaml)
    body = dict(definition)
    wdir = folder
    raw_wdir = body.get("wdir")
    if raw_wdir:
        filled = context.resolve_str(str(raw_wdir), dvc_yaml, f"stages.{name}.wdir")
        wdir = posixpath.join(folder, _to_str(filled))
    stage_vars = body.pop("vars", None)
    if stage_vars:
        context = context.clone()
        context.load_vars(read, stage_vars, wdir, dvc_yaml, f"stages.{name}.vars")
    resolved = {
        key: context.resolve(value, dvc_yaml, f"stages.{name}.{key}", key)
        for key, value in body.items()
    }
    wdir = posixpath.normpath(wdir) if wdir else ""
    return ResolvedStage(name, resolved, "" if wdir == "." else wdir)


def resolve_stages(
    read: Reader, context: Context, stages: Mapping[str, Any], dvc_yaml: str
) -> list[ResolvedStage]:
    """Every stage of a dvc.yaml with its templates filled, `foreach`/`matrix` expanded."""
    resolved: list[ResolvedStage] = []
    for name, definition in stages.items():
        name = str(name)
        if "matrix" in definition:
            template = {k: v for k, v in definition.items() if k != "matrix"}
            check_syntax(template, dvc_yaml, f"stages.{name}")
            matrix = context.resolve(definition["matrix"], dvc_yaml, f"stages.{name}.matrix")
            generated = _matrix_items(matrix, dvc_yaml, f"stages.{name}.matrix")
        elif "foreach" in definition:
            template = definition.get("do") or {}
            check_syntax(template, dvc_yaml, f"stages.{name}")
            where = f"stages.{name}.foreach"
            data = context.resolve(definition["foreach"], dvc_yaml, where, "foreach")
            generated = _foreach_items(data, dvc_yaml, where)
        else:
            check_syntax(definition, dvc_yaml, f"stages.{name}")
            resolved.append(_resolve_one(read, context, name, definition, dvc_yaml))
            continue
        for key, names in generated:
            # `item` and `key` shadow any vars of the same name for this iteration only.
            scoped = Context({**context.data, **names}, context.imports)
            resolved.append(_resolve_one(read, scoped, f"{name}@{key}", template, dvc_yaml))
    return resolved


def resolve_list(
    context: Context, entries: Sequence[Any], dvc_yaml: str, section: str
) -> list[Any]:
    """A top-level list (`metrics:`), each entry filled (`TopDefinition.resolve`)."""
    result = []
    for index, entry in enumerate(entries):
        where = f"{section}.{index}"
        check_syntax(entry, dvc_yaml, where)
        result.append(context.resolve(entry, dvc_yaml, where))
    return result
