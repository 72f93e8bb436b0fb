"""Metrics files read, flattened and compared exactly as `dvc metrics diff` does; repeat stats."""

from __future__ import annotations

import json
import math
import posixpath
import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import yaml

from bot.core.bounded_parse import load_json, load_toml
from bot.core.dvc import compose_yaml, load_python_literals, load_yaml
from bot.errors import FileLimitExceeded, MetricsFileError

# What survives DVC's `_extract_metrics`: numbers (bool included, it is an int) and strings.
MetricValue = int | float | str
FileMetrics = Mapping[str, MetricValue]


class MetricDiff(TypedDict):
    """One entry of `dvc metrics diff --json`: `diff` only when both sides are numbers."""

    old: MetricValue | None
    new: MetricValue | None
    diff: NotRequired[int | float]


def _format_of(path: str) -> str:
    # DVC chooses the loader by extension and falls back to YAML (dvc/utils/serialize LOADERS).
    ext = posixpath.splitext(path)[1].lower()
    return {".json": "json", ".toml": "toml", ".py": "python"}.get(ext, "yaml")


def _text(content: str | bytes, path: str) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetricsFileError(path, f"not UTF-8 text ({exc.reason})") from exc


def _extract(value: Any) -> Any:
    """DVC's `_extract_metrics` (dvc/repo/metrics/show.py): keep numbers and strings.

    Lists, nulls, dates and anything else are dropped, and so is a mapping left empty.
    """
    if isinstance(value, int | float | str):
        return value
    if not isinstance(value, Mapping):
        return None
    kept = {}
    for key, item in value.items():
        extracted = _extract(item)
        if extracted is not None and extracted != {}:
            kept[key] = extracted
    return kept


def flatten_metrics(data: Any, path: str = "<metrics>") -> dict[str, MetricValue]:
    """Parsed metrics file content → `{dotted key: value}` as DVC shows it.

    Nested keys are joined with `.` (`dvc/utils/flatten.py`, flatten_dict's "dot" reducer);
    non-scalar values are dropped. A file holding one bare number is keyed `""`, as in
    `dvc/utils/diff.py` `_diff`; like DVC's `_read_metric` (`val or {}`), a falsy one is
    dropped.
    """
    extracted = _extract(data)
    if not extracted:
        return {}
    if not isinstance(extracted, Mapping):
        return {"": extracted}
    flat: dict[str, MetricValue] = {}

    def walk(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                walk(value, name)
            elif name in flat:
                # flatten_dict raises on such a clash too; say which key it was.
                raise MetricsFileError(path, f"key {name!r} appears both nested and dotted")
            else:
                flat[name] = value

    walk(extracted, "")
    return flat


def parse_metrics(content: str | bytes, path: str) -> dict[str, MetricValue]:
    """Read a metrics file (JSON, TOML, else YAML by extension) and flatten it like DVC.

    The bytes are UTF-8 as DVC reads them (`dvc/utils/serialize/_common.py`, encoding
    "utf-8"): a byte-order mark is kept, so JSON and TOML that start with one do not parse,
    while YAML skips it.
    """
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MetricsFileError(path, f"not UTF-8 text ({exc.reason})") from exc
    else:
        text = content
    kind = _format_of(path)
    try:
        if kind == "json":
            data: Any = load_json(text)
        elif kind == "toml":
            data = load_toml(text)
        elif kind == "python":
            data = load_python_literals(text)
        else:
            data = load_yaml(text)
    except (ValueError, SyntaxError, yaml.YAMLError) as exc:  # JSON and TOML errors too
        reason = " ".join(str(exc).split())
        name = "Python" if kind == "python" else kind.upper()
        raise MetricsFileError(path, f"invalid {name}: {reason}") from exc
    except FileLimitExceeded as exc:
        raise MetricsFileError(path, str(exc)) from exc
    return flatten_metrics(data, path)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


# What DVC's `_diff_dicts` shows for a key when the other side's file holds one bare value
# instead of a mapping (dvc/utils/diff.py `_flatten`).
UNPARSABLE = "unable to parse"


def _as_dvc_reads(flat: FileMetrics) -> Any:
    """A file's flattened metrics back as what `dvc/utils/diff.py` `_diff` compares.

    A missing or empty file is `{}`. A bare value (key `""`) goes through DVC's `_parse`:
    a string that is JSON becomes what it encodes (`"3"` is 3, `"[1]"` a list).
    """
    if set(flat) != {""}:
        return flat
    value = flat[""]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _keys(side: Any) -> Mapping[str, Any]:
    """DVC's `_flatten`: a mapping's keys; nothing for an empty side; else every key unparsable."""
    if isinstance(side, Mapping):
        return flatten_metrics_dict(side)
    return {}


def flatten_metrics_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings joined with `.` (flatten_dict's "dot" reducer), values kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            for sub, leaf in flatten_metrics_dict(value).items():
                flat[f"{key}.{sub}"] = leaf
        else:
            flat[str(key)] = value
    return flat


def _missing_value(side: Any) -> Any:
    # `_flatten` gives None for every key of an empty side, "unable to parse" for a bare value.
    return None if not side or isinstance(side, Mapping) else UNPARSABLE


def _entry(old: Any, new: Any, all: bool) -> MetricDiff | None:  # noqa: A002
    """DVC's `_diff_vals`: None when equal (unless `all`); `diff` only between two numbers."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) == 1:
        return _entry(old[0], new[0], all)
    if not all and old == new:
        return None
    entry: MetricDiff = {"old": old, "new": new}
    if _is_number(old) and _is_number(new):
        entry["diff"] = new - old
    return entry


def diff_metrics(
    old: Mapping[str, FileMetrics],
    new: Mapping[str, FileMetrics],
    all: bool = False,  # noqa: A002 - the name of `dvc metrics diff --all`
) -> dict[str, dict[str, MetricDiff]]:
    """`dvc metrics diff --json` for two `{path: {dotted key: value}}` sets.

    Follows `dvc/utils/diff.py` (`diff`, `_diff`, `_diff_dicts`, `_diff_vals`) as called by
    `dvc/repo/metrics/diff.py`:
    - every path and key present on either side is compared; a missing file or key reads
      as None (so a new metric is `{"old": None, "new": v}`, a removed one the reverse); a
      file that did not load reads as missing, as DVC's errored files do;
    - equal values (`==`, so 1 == 1.0) are left out unless `all` (`--all`) is set, and a
      path with nothing left is left out;
    - `diff` = new - old, only when both are numbers (bools count, as in Python); it is
      absent for strings and missing values;
    - a file holding one bare value (key `""`) is compared only with another bare value:
      against a missing file it shows nothing, against a mapping each key of the mapping
      shows "unable to parse" on the bare side, as DVC prints;
    - nothing is rounded: `--precision` only affects DVC's table, not `--json`.
    Paths and keys come back sorted, where DVC iterates a set.
    """
    result: dict[str, dict[str, MetricDiff]] = {}
    for path in sorted(set(old) | set(new)):
        before = _as_dvc_reads(old.get(path, {}))
        after = _as_dvc_reads(new.get(path, {}))
        entries: dict[str, MetricDiff] = {}
        if isinstance(before, Mapping) or isinstance(after, Mapping):
            old_keys, new_keys = _keys(before), _keys(after)
            for key in sorted(set(old_keys) | set(new_keys)):
                entry = _entry(
                    old_keys[key] if key in old_keys else _missing_value(before),
                    new_keys[key] if key in new_keys else _missing_value(after),
                    all,
                )
                if entry is not None:
                    entries[key] = entry
        elif (entry := _entry(before, after, all)) is not None:
            entries[""] = entry
        if entries:
            result[path] = entries
    return result


# ---------------------------------------------------------------------------- locate_key

Located = list[tuple[str, int, Any]]  # (key, 1-based line, children or None)
_DECODER = json.JSONDecoder()


def _json_string(text: str, index: int) -> tuple[str, int]:
    """Decode the JSON string literal starting at `index`; its value and the index after it."""
    value, end = _DECODER.raw_decode(text, index)
    return str(value), end  # it starts with `"`: a string, or raw_decode raised


def _find(entries: Located, parts: Sequence[str]) -> int | None:
    # A dotted key may be nested keys or a key that itself contains dots; try both.
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        for key, line, children in entries:
            if key != head:
                continue
            if cut == len(parts):
                return line
            if children:
                found = _find(children, parts[cut:])
                if found is not None:
                    return found
    return None


def _yaml_entries(node: yaml.Node | None) -> Located:
    if not isinstance(node, yaml.MappingNode):
        return []
    entries: Located = []
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            entries.append(
                (str(key_node.value), key_node.start_mark.line + 1, _yaml_entries(value_node))
            )
    return entries


class _JsonLocator:
    """A JSON walker that records the line of every object key (json gives no positions)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _skip(self, index: int) -> int:
        return _JSON_SPACE.match(self.text, index).end()  # type: ignore[union-attr] # `*`

    def _line(self, index: int) -> int:
        return self.text.count("\n", 0, index) + 1

    def value(self, index: int) -> tuple[Located | None, int]:
        index = self._skip(index)
        char = self.text[index : index + 1]
        if char == "{":
            return self._object(index + 1)
        # Anything else, arrays too, holds no key DVC reads (it drops lists): read it whole.
        _, end = _DECODER.raw_decode(self.text, index)
        return None, end

    def _object(self, index: int) -> tuple[Located, int]:
        entries: Located = []
        index = self._skip(index)
        if self.text[index : index + 1] == "}":
            return entries, index + 1
        while True:
            index = self._skip(index)
            if self.text[index : index + 1] != '"':
                raise ValueError  # not JSON: load_json has already refused it
            line = self._line(index)
            key, index = _json_string(self.text, index)
            index = self._skip(index)
            if self.text[index : index + 1] != ":":
                raise ValueError  # not JSON: load_json has already refused it
            children, index = self.value(index + 1)
            entries.append((key, line, children or []))
            index = self._skip(index)
            char = self.text[index : index + 1]
            if char == "}":
                return entries, index + 1
            if char != ",":
                raise ValueError  # not JSON: load_json has already refused it
            index += 1


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_TOML_BARE = re.compile(r"[A-Za-z0-9_-]+")
# What decides how deep a TOML line nests brackets: strings, a comment, a bracket.
_TOML_BRACKET = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|#|[\[\]]")


def _toml_key(text: str, index: int, stop: str) -> tuple[list[str], int]:
    """Parse a (dotted, possibly quoted) TOML key starting at `index`, up to `stop`."""
    parts: list[str] = []
    while True:
        while index < len(text) and text[index] in " \t":
            index += 1
        char = text[index : index + 1]
        if char == '"':
            part, index = _json_string(text, index)
        elif char == "'":
            end = text.index("'", index + 1)
            part, index = text[index + 1 : end], end + 1
        else:
            match = _TOML_BARE.match(text, index)
            if match is None:
                raise ValueError  # caught by _toml_line: the line holds no key
            part, index = match.group(), match.end()
        parts.append(part)
        while index < len(text) and text[index] in " \t":
            index += 1
        char = text[index : index + 1]
        if char == ".":
            index += 1
            continue
        if text.startswith(stop, index):
            return parts, index + len(stop)
        raise ValueError  # caught by _toml_line: the line holds no key


def _bracket_depth(text: str, depth: int) -> int:
    """`depth` after the brackets of one line of TOML, those in strings and comments aside."""
    for token in _TOML_BRACKET.finditer(text):
        if token[0] == "#":
            break
        depth += 1 if token[0] == "[" else -1 if token[0] == "]" else 0
    return depth


def _toml_line(text: str, dotted_key: str) -> int | None:
    table: list[str] | None = []
    multiline: str | None = None
    array = 0  # brackets left open by an array that spans lines: its lines hold no keys
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if multiline is not None:
            if multiline in line:
                multiline = None
            continue
        if array > 0:
            array = _bracket_depth(line, array)
            continue
        try:  # a blank or comment line holds no key: _toml_key raises
            if line.startswith("[["):
                table = None  # arrays of tables are lists, which DVC drops
                continue
            if line.startswith("["):
                table, _ = _toml_key(line, 1, "]")
                continue
            key, end = _toml_key(line, 0, "=")
        except ValueError:
            continue
        if table is None:
            continue
        name = ".".join([*table, *key])
        rest = line[end:].strip()
        if name == dotted_key or (rest.startswith("{") and dotted_key.startswith(name + ".")):
            return number
        for quote in ('"""', "'''"):
            if rest.startswith(quote) and rest.count(quote) == 1:
                multiline = quote
        array = _bracket_depth(rest, 0)
    return None


def locate_key(content: str | bytes, path: str, dotted_key: str) -> int | None:
    """The 1-based line where a flattened metric key is written, for check-run annotations.

    None when the file cannot be parsed or the key is not in it.
    """
    try:
        text = _text(content, path)
    except MetricsFileError:
        return None
    kind = _format_of(path)
    parts = dotted_key.split(".")
    try:
        if kind == "toml":
            return _toml_line(text, dotted_key)
        if kind == "json":
            load_json(text)  # the locator recurses per level: only within the limits
            entries, _ = _JsonLocator(text).value(0)
        else:
            node = compose_yaml(text)
            entries = _yaml_entries(node)
    except (ValueError, IndexError, yaml.YAMLError, FileLimitExceeded):
        return None
    return _find(entries or [], parts)


# ---------------------------------------------------------------------------- repeats


@dataclass(frozen=True)
class Stat:
    """A metric over repeated runs: mean, sample standard deviation (`spread`), run count."""

    mean: float
    spread: float
    n: int

    def within_noise(self, change: float) -> bool:
        """A change smaller than the spread between repeats cannot be told from noise."""
        return abs(change) < self.spread


def _numbers(runs: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, float]]:
    for run in runs:
        for key, value in run.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    yield key, float(value)


def aggregate(runs: Sequence[Mapping[str, float]]) -> dict[str, Stat]:
    """Mean ± sample standard deviation of each metric over repeated evaluation runs.

    A metric missing from some runs is aggregated over the runs that have it (`n` says how
    many); non-numeric and non-finite values are skipped. One run gives spread 0.
    """
    values: dict[str, list[float]] = {}
    for key, value in _numbers(runs):
        values.setdefault(key, []).append(value)
    return {
        key: Stat(
            mean=statistics.fmean(series),
            spread=statistics.stdev(series) if len(series) > 1 else 0.0,
            n=len(series),
        )
        for key, series in sorted(values.items())
    }


# ---------------------------------------------------------------------------- display


def format_value(value: MetricValue | None) -> str:
    """A metric value as DVC's table shows it: floats rounded to 5 decimals, missing as `-`.

    (`dvc/compare.py` `_format_field` with `--precision` 5 and `round_digits`.) A non-zero
    float that rounding would turn into 0 keeps 5 significant digits instead.
    """
    if value is None:
        return "-"
    if isinstance(value, float) and not isinstance(value, bool):
        if math.isfinite(value) and value != 0 and round(value, 5) == 0:
            return f"{value:.5g}"
        return str(round(value, 5))
    return str(value)


def format_change(change: float) -> str:
    """A signed difference: `+0.012`, `-3`, `0`."""
    text = format_value(change)
    return text if text.startswith("-") or change == 0 else f"+{text}"
