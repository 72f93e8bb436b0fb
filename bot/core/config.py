"""The repository configuration `.github/mlgate.yml`: typed model, validator, `/retrain` checks."""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.core.bounded_parse import check_size
from bot.core.cron import CRON_EXPECTED, parse_cron
from bot.core.gates import Direction, Gate, Threshold
from bot.errors import FileLimitExceeded, ParameterError, RepoConfigError

CONFIG_PATH = ".github/mlgate.yml"
# `/retrain` parameters reach a run as MLGATE_PARAM_<NAME> (upper-cased), locally or on Semaphore.
PARAM_PREFIX = "MLGATE_PARAM_"

MetricsSource = Literal["git", "run", "semaphore"]
Runner = Literal["local", "semaphore"]
ParameterType = Literal["string", "int", "float", "bool"]
DeployOn = Literal["merge", "approval"]

METRICS_SOURCES: tuple[MetricsSource, ...] = ("git", "run", "semaphore")
RUNNERS: tuple[Runner, ...] = ("local", "semaphore")
PARAMETER_TYPES: tuple[ParameterType, ...] = ("string", "int", "float", "bool")
DIRECTIONS: tuple[Direction, ...] = ("higher", "lower")
DEPLOY_ON: tuple[DeployOn, ...] = ("merge", "approval")
# GitHub's repository roles, weakest first (docs/using.md, Commands on a pull request).
PERMISSIONS: tuple[str, ...] = ("read", "triage", "write", "maintain", "admin")
# The sandbox's address-space limit per process of a step unless it sets `memory`.
DEFAULT_MEMORY = 4 * 1024**3
# Below this not even an interpreter starts under an address-space limit; above, a typo.
MEMORY_MIN = 64 * 1024**2
MEMORY_MAX = 1024**4
# Files a retrain may commit unless `retrain.outputs` says otherwise: the pipeline's lock,
# the usual metrics file and DVC pointers (models and data).
DEFAULT_RETRAIN_OUTPUTS: tuple[str, ...] = ("dvc.lock", "metrics.json", "**/*.dvc")
# Each candidate of a `/retrain` matrix is a run on a worker: the cap bounds one comment's cost.
MAX_CANDIDATES_LIMIT = 64


@dataclass(frozen=True)
class Triggers:
    """Globs of changed paths that make a pull request worth evaluating."""

    # Without a configuration, a PR that changes data, code or parameters is considered (and
    # one that changes a metrics file, see bot/core/changes.py): DVC's files, the usual data
    # folder, Python sources and notebooks at any depth, and parameter files.
    data: tuple[str, ...] = ("**/*.dvc", "dvc.lock", "data/**")
    code: tuple[str, ...] = ("dvc.yaml", "params.yaml", "params.json", "*.py", "*.ipynb", "src/**")
    drafts: bool = False  # evaluate draft pull requests too


@dataclass(frozen=True)
class MetricsConfig:
    """Where metrics come from; no files means those declared under `metrics:` in dvc.yaml."""

    files: tuple[str, ...] = ()
    source: MetricsSource = "git"


@dataclass(frozen=True)
class EvaluateConfig:
    """How a worker evaluates the model: an argv (never a shell), in seconds, N times."""

    run: tuple[str, ...] | None = None
    timeout: float = 30 * 60.0
    repeats: int = 1
    network: bool = False  # the sandbox's network (ARCHITECTURE.md, trust boundary)
    memory: int = DEFAULT_MEMORY  # bytes of address space per process


@dataclass(frozen=True)
class Parameter:
    """One `/retrain` argument; `choices` and `default` are canonical strings of their type."""

    name: str
    type: ParameterType = "string"
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class RetrainConfig:
    """How a retrain runs: `run` on a worker (local) or `pipeline_file` on Semaphore.

    `on_data` and `schedule` (a cron expression in UTC) retrain the default branch on their
    own; `outputs` are the globs of files a retrain may commit; `max_candidates` caps a
    `/retrain` matrix; `rank_by` orders its leaderboard (None: see `RepoConfig.rank_metric`).
    """

    runner: Runner = "local"
    run: tuple[str, ...] | None = None
    pipeline_file: str | None = None
    parameters: tuple[Parameter, ...] = ()
    network: bool = False
    memory: int = DEFAULT_MEMORY
    on_data: bool = False
    schedule: str | None = None
    outputs: tuple[str, ...] = DEFAULT_RETRAIN_OUTPUTS
    max_candidates: int = 8
    rank_by: str | None = None


@dataclass(frozen=True)
class SemaphoreConfig:
    """The Semaphore project of the repository and its evaluation pipeline."""

    project_id: str | None = None
    pipeline_file: str | None = None


@dataclass(frozen=True)
class Approvers:
    """Who may approve a deploy: anyone with `permission` or more, and the users and teams."""

    permission: str | None = "maintain"
    users: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployConfig:
    """How an approved model is deployed; neither `promotion` nor `run` means no deploys."""

    promotion: str | None = None
    run: tuple[str, ...] | None = None
    approvers: Approvers = Approvers()
    allow_self_approval: bool = False
    on: DeployOn = "merge"
    network: bool = True  # a deploy usually talks to a registry or a cluster
    memory: int = DEFAULT_MEMORY

    @property
    def enabled(self) -> bool:
        return self.promotion is not None or self.run is not None


@dataclass(frozen=True)
class MonitorConfig:
    """Production monitoring: uploads with `env` are gated; `window` in a row breach/recover."""

    env: str = "production"
    gates: tuple[Gate, ...] = ()  # none given: the top-level gates
    window: int = 3
    on_breach: tuple[str, ...] = ("issue",)


@dataclass(frozen=True)
class RepoConfig:
    """The whole of `.github/mlgate.yml`; every section has a default."""

    version: int = 1
    triggers: Triggers = Triggers()
    metrics: MetricsConfig = MetricsConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    retrain: RetrainConfig = RetrainConfig()
    semaphore: SemaphoreConfig = SemaphoreConfig()
    gates: tuple[Gate, ...] = ()  # none: report only, never fail
    deploy: DeployConfig = DeployConfig()
    monitor: MonitorConfig | None = None  # no `monitor:`: production uploads are only kept

    def monitor_gates(self) -> tuple[Gate, ...]:
        """The gates production uploads are held to."""
        return (self.monitor.gates if self.monitor else ()) or self.gates

    def rank_metric(self) -> str | None:
        """The metric a `/retrain` leaderboard is ordered by: `retrain.rank_by`, else the
        metric of the first gate that names one metric (a `*` slice gate names many)."""
        if self.retrain.rank_by is not None:
            return self.retrain.rank_by
        return next((gate.metric for gate in self.gates if "*" not in gate.metric), None)


def default_config() -> RepoConfig:
    """The configuration of a repository without `.github/mlgate.yml`."""
    return RepoConfig()


def parse_config(text: str, filename: str = CONFIG_PATH) -> RepoConfig:
    """Parse and validate the configuration; `RepoConfigError` lists every problem found."""
    problems: list[tuple[int, str]] = []
    try:
        # Only the size limit: the checker below resolves aliases and merges once each and
        # catches deep nesting, so the node and depth limits of repository files are not needed.
        check_size(text)
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise RepoConfigError([_yaml_problem(filename, text, exc)]) from None
    except FileLimitExceeded as exc:
        raise RepoConfigError([f"{filename}:1 {exc}"]) from None
    try:
        root = loader.get_single_node()
        checker = _Checker(filename, loader, problems)
        config = checker.config(root)
    except yaml.YAMLError as exc:
        raise RepoConfigError([_yaml_problem(filename, text, exc)]) from None
    except RecursionError:
        # The composer recurses once per nesting level; hostile input can exhaust the stack.
        raise RepoConfigError([f"{filename}:1 invalid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()
    if problems:
        problems.sort(key=lambda problem: problem[0])
        raise RepoConfigError([line for _, line in problems])
    return config


def validate_file(path: Path) -> list[str]:
    """Problems of the configuration file at `path` (empty when valid), for the CLI."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [f"{name}: no such file"]
    except UnicodeDecodeError as exc:
        return [
            f"{name}: expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} at {exc.start}"
        ]
    except OSError as exc:
        return [f"{name}: cannot read: {exc.strerror or exc}"]
    try:
        parse_config(text, name)
    except RepoConfigError as exc:
        return exc.problems
    return []


_DURATION_UNITS = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*(?:(?P<m>\d+(?:\.\d+)?)\s*m)?\s*(?:(?P<s>\d+(?:\.\d+)?)\s*s)?"
)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
DURATION_EXPECTED = "a duration like 30m, 1h30m, 90s or a number of seconds, above 0"


def parse_duration(value: str | float) -> float:
    """Seconds of `30m`, `1h`, `90s`, `1h30m` or a number of seconds; `ValueError` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_EXPECTED}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        units = _DURATION_UNITS.fullmatch(text)
        if _SECONDS.fullmatch(text):
            seconds = float(text)
        elif text and units:
            seconds = sum(
                float(units[unit]) * factor
                for unit, factor in (("h", 3600), ("m", 60), ("s", 1))
                if units[unit] is not None
            )
        else:
            raise ValueError(f"expected {DURATION_EXPECTED}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected {DURATION_EXPECTED}")
    return seconds


_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?", re.IGNORECASE)
MEMORY_EXPECTED = "a memory size with a unit, like 4G or 512M, from 64M to 1T"


def parse_memory(value: str) -> int:
    """Bytes of `4G`, `512M`, `1.5GiB` (binary units, as ulimit counts); `ValueError` otherwise.

    A bare number is refused: bytes or megabytes would be a guess.
    """
    match = _MEMORY.fullmatch(value.strip())
    if not match:
        raise ValueError(f"expected {MEMORY_EXPECTED}")
    size = int(float(match[1]) * 1024 ** ("kmgt".index(match[2].lower()) + 1))
    if not MEMORY_MIN <= size <= MEMORY_MAX:
        raise ValueError(f"expected {MEMORY_EXPECTED}")
    return size


# Accepted spellings of `/retrain flag=...` for bool parameters.
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def validate_parameters(specs: Sequence[Parameter], given: Mapping[str, str]) -> dict[str, str]:
    """All parameters as canonical strings with defaults filled in, or `ParameterError`."""
    by_name = {spec.name: spec for spec in specs}
    values: dict[str, str] = {}
    problems: list[str] = []
    for key, text in given.items():
        spec = by_name.get(key)
        if spec is None:
            if by_name:
                accepted = f"/retrain accepts {', '.join(by_name)}"
            else:
                accepted = "/retrain accepts none (retrain.parameters declares none)"
            problems.append(f'unknown parameter "{key}"; {accepted}{_did_you_mean(key, by_name)}')
            continue
        value, reason = _parameter_value(spec, text)
        if value is None:
            problems.append(f"{key}={text}: {reason}; expected {describe_accepted(spec)}")
        else:
            values[key] = value
    for spec in specs:
        if spec.name in given:
            continue
        if spec.default is not None:
            values[spec.name] = spec.default
        elif spec.required:
            problems.append(
                f"missing required parameter {spec.name}; expected {spec.name}=<value>"
                f" with {describe_accepted(spec)}"
            )
    if problems:
        raise ParameterError(problems)
    return {spec.name: values[spec.name] for spec in specs if spec.name in values}


def describe_accepted(spec: Parameter) -> str:
    """What a parameter accepts, for error messages and `/help`."""
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.type == "bool":
        return "true or false (or yes/no, 1/0)"
    if spec.type == "string":
        return "any text"
    noun = "an integer" if spec.type == "int" else "a number"
    if spec.min is not None and spec.max is not None:
        return f"{noun} from {_number_text(spec.min)} to {_number_text(spec.max)}"
    if spec.min is not None:
        return f"{noun} of at least {_number_text(spec.min)}"
    if spec.max is not None:
        return f"{noun} of at most {_number_text(spec.max)}"
    return noun


def _parameter_value(spec: Parameter, text: str) -> tuple[str | None, str]:
    """The canonical value of `text` for `spec`, or None and the reason it is refused."""
    if "\x00" in text:  # parameters become environment variables, which cannot hold NUL
        return None, "contains a NUL character"
    value: str
    number: float | None = None
    if spec.type == "bool":
        lowered = text.strip().lower()
        if lowered not in _TRUE | _FALSE:
            return None, "not a boolean"
        value = "true" if lowered in _TRUE else "false"
    elif spec.type == "int":
        # Python refuses to convert integers of more than 4300 digits (CVE-2020-10735).
        if not _INT_TEXT.fullmatch(text.strip()) or len(text) > 100:
            return None, "not an integer"
        number = int(text)
        value = str(number)
    elif spec.type == "float":
        if not _FLOAT_TEXT.fullmatch(text.strip()) or not math.isfinite(float(text)):
            return None, "not a number"
        number = float(text)
        value = repr(number)
    else:
        value = text
    if spec.choices and value not in spec.choices:
        return None, "not one of the choices"
    if number is not None and spec.min is not None and number < spec.min:
        return None, "below the minimum"
    if number is not None and spec.max is not None and number > spec.max:
        return None, "above the maximum"
    return value, ""


def _number_text(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number)


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    options = list(options)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches:
        matches = [option for option in options if option.lower() == word.lower()][:1]
    return f' (did you mean "{matches[0]}"?)' if matches else ""


def _yaml_problem(filename: str, text: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        parts = [part for part in (exc.context, exc.problem) if part]
        return f"{filename}:{line} invalid YAML: {', '.join(parts) or exc}"
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        character = (
            exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        )
        return f"{filename}:{line} invalid YAML: {exc.reason} (U+{character:04X})"
    return f"{filename}:1 invalid YAML: {exc}"


_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _MERGE = (
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge")
)
_INVALID = object()
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENT = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*%\s*")
_WORD = re.compile(r"@?[^\s@]+")

_SECTIONS = (
    "version",
    "triggers",
    "metrics",
    "evaluate",
    "retrain",
    "semaphore",
    "gates",
    "deploy",
    "monitor",
)
MONITOR_ACTIONS = ("issue", "retrain")
_ENV_NAME = re.compile(r"[A-Za-z0-9._-]{1,50}")
_GATE_KEYS = ("direction", "max", "max_drop", "max_rise", "min")
_THRESHOLD_KEYS = ("min", "max", "max_drop", "max_rise")
_PARAMETER_KEYS = ("choices", "default", "max", "min", "required", "type")

T = TypeVar("T")


@dataclass(frozen=True)
class _Field:
    """A value in the file: its dotted key, the line its key is on, and its YAML node."""

    path: str
    line: int
    node: Node


Pair = tuple[Node, Node]


def _first_of_each_key(pairs: list[Pair]) -> list[Pair]:
    seen: set[str] = set()
    first: list[Pair] = []
    for key_node, value_node in pairs:
        if isinstance(key_node, ScalarNode):
            if key_node.value in seen:
                continue
            seen.add(key_node.value)
        first.append((key_node, value_node))
    return first


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _of(keys: Sequence[str]) -> str:
    return "a mapping of " + ", ".join(sorted(keys))


def _quote(text: str) -> str:
    if len(text) > 60:
        text = text[:57] + "..."
    return json.dumps(text, ensure_ascii=False)


class _Checker:
    """Walks the composed YAML nodes, collecting problems and building the typed config."""

    def __init__(self, filename: str, loader: yaml.SafeLoader, problems: list[tuple[int, str]]):
        self.filename = filename
        self.loader = loader
        self.problems = problems
        self.lines: dict[str, int] = {}  # dotted key -> line, for problems across sections
        self.reported: set[str] = set()  # dotted keys with a problem, to report each once
        self.merge_cache: dict[int, list[Pair]] = {}  # id of a merged mapping node -> its pairs

    # --- reporting -------------------------------------------------------------------------

    def add(self, line: int, path: str, message: str) -> None:
        self.reported.add(path)
        self.problems.append((line, f"{self.filename}:{line} {path}: {message}"))

    def expected(self, field: _Field, what: str, got: str | None = None) -> None:
        self.add(field.line, field.path, f"expected {what}, got {got or self.got(field.node)}")

    def required(self, by: str, by_value: str, path: str, what: str, line: int) -> None:
        self.add(line, path, f"expected {what} (required by {by}: {by_value}), got nothing")

    def got(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping" if node.value else "an empty mapping"
        if isinstance(node, SequenceNode):
            return "a list" if node.value else "an empty list"
        text = str(node.value)
        if node.tag == _STR:
            return _quote(text)
        if node.tag == _NULL:
            return "null"
        value = self.construct(node)
        if node.tag == _BOOL and isinstance(value, bool):
            word = "true" if value else "false"
            return (
                word if text.lower() == word else f"{text} (a boolean in YAML; quote it for text)"
            )
        if node.tag in (_INT, _FLOAT) and value is not _INVALID:
            return text
        if node.tag == _TIMESTAMP and value is not _INVALID:
            return f"{text} (a date in YAML)"
        return f"{_quote(text)} tagged {node.tag.replace(_TAG, '!!')}"

    def construct(self, node: Node) -> object:
        try:
            return cast(object, self.loader.construct_object(node, deep=True))
        except Exception:  # explicit tags (`!!int abc`, `!!python/...`) fail in many ways
            return _INVALID

    # --- structure -------------------------------------------------------------------------

    def mapping(
        self, field: _Field, keys: Sequence[str] | None, what: str | None = None
    ) -> dict[str, _Field] | None:
        """The non-null entries of a mapping, reporting unknown and repeated keys."""
        node = field.node
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return {}  # `accuracy:` under gates: a name with nothing configured
        if not isinstance(node, MappingNode):
            self.expected(field, what or _of(keys or ()))
            return None
        own = [(key, value) for key, value in node.value if key.tag != _MERGE]
        merged = self.merged(node, field, {id(node)})
        entries: dict[str, _Field] = {}
        seen: dict[str, int] = {}
        # Own keys first: they override merged ones, and only they can be repeated by mistake.
        tagged = [(pair, True) for pair in own] + [(pair, False) for pair in merged]
        for (key_node, value_node), is_own in tagged:
            if not isinstance(key_node, ScalarNode):
                key_field = _Field(field.path or "top level", _line(key_node), key_node)
                self.expected(key_field, "a key name")
                continue
            # The raw text, not the YAML value: `on:` would otherwise be the boolean true.
            key = str(key_node.value)
            path = f"{field.path}.{key}" if field.path else key
            line = _line(key_node)
            if key in seen:
                if is_own:
                    self.add(line, path, f"expected each key once, got it again (line {seen[key]})")
                continue
            seen[key] = line
            if keys is not None and key not in keys:
                self.add(
                    line,
                    path,
                    f"unknown key; expected one of {', '.join(sorted(keys))}"
                    + _did_you_mean(key, keys),
                )
                continue
            self.lines[path] = line
            if keys is not None and isinstance(value_node, ScalarNode) and value_node.tag == _NULL:
                continue  # `key:` with nothing after it: as if absent, so the default applies
            entries[key] = _Field(path, line, value_node)
        return entries

    def merged(self, node: MappingNode, field: _Field, active: set[int]) -> list[Pair]:
        """The pairs merged into a mapping with `<<`, the first of each key only (YAML's rule)."""
        merged: list[Pair] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            path = f"{field.path}.<<" if field.path else "<<"
            merge_field = _Field(path, _line(key_node), value_node)
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            if not all(isinstance(source, MappingNode) for source in sources):
                self.expected(merge_field, "a mapping or a list of mappings to merge")
                continue
            for source in sources:
                if id(source) in active:
                    self.expected(merge_field, "merges that end", "a mapping that merges itself")
                    continue
                merged.extend(self.resolved(source, field, active | {id(source)}))
        return _first_of_each_key(merged)

    def resolved(self, node: MappingNode, field: _Field, active: set[int]) -> list[Pair]:
        # Memoised: aliases can merge the same anchor many times over (a "billion laughs").
        if id(node) not in self.merge_cache:
            own = [(key, value) for key, value in node.value if key.tag != _MERGE]
            self.merge_cache[id(node)] = _first_of_each_key(own + self.merged(node, field, active))
        return self.merge_cache[id(node)]

    def field_list(self, field: _Field) -> list[_Field] | None:
        if not isinstance(field.node, SequenceNode):
            return None
        return [
            _Field(f"{field.path}[{index}]", _line(item), item)
            for index, item in enumerate(field.node.value)
        ]

    # --- scalars ---------------------------------------------------------------------------

    def text(self, field: _Field, what: str, pattern: re.Pattern[str] | None = None) -> str | None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag == _STR and str(node.value).strip():
            if pattern is None or pattern.fullmatch(str(node.value)):
                return str(node.value)
        self.expected(field, what)
        return None

    def boolean(self, field: _Field) -> bool | None:
        if isinstance(field.node, ScalarNode) and field.node.tag == _BOOL:
            value = self.construct(field.node)
            if isinstance(value, bool):
                return value
        self.expected(field, "true or false")
        return None

    def number(self, field: _Field, what: str = "a number", integer: bool = False) -> float | None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag in ((_INT,) if integer else (_INT, _FLOAT)):
            value = self.construct(node)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    return value
        self.expected(field, what)
        return None

    def integer(self, field: _Field, what: str) -> int | None:
        value = self.number(field, what, integer=True)
        return None if value is None else int(value)

    def choice(self, field: _Field, options: Sequence[str]) -> str | None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag == _STR:
            if node.value in options:
                return str(node.value)
            got = _quote(str(node.value)) + _did_you_mean(str(node.value), options)
            self.expected(field, "one of " + ", ".join(options), got)
            return None
        self.expected(field, "one of " + ", ".join(options))
        return None

    def texts(
        self, field: _Field, item: str, pattern: re.Pattern[str] | None = None
    ) -> tuple[str, ...] | None:
        """A list of non-empty strings; a single string is a list of one."""
        what = f"a {item} (a string)" if pattern is None else f"a {item} without spaces"
        if isinstance(field.node, ScalarNode) and field.node.tag == _STR:
            single = self.text(field, what, pattern)
            return None if single is None else (single,)
        items = self.field_list(field)
        if items is None:
            self.expected(field, f"a list of {item}s")
            return None
        values = [self.text(item_field, what, pattern) for item_field in items]
        return tuple(value for value in values if value is not None)

    def command(self, field: _Field) -> tuple[str, ...] | None:
        """An argv: a string split like a POSIX shell would (but never run by one), or a list."""
        what = "a command (a string or a list of arguments)"
        node = field.node
        argv: list[str] = []
        if isinstance(node, ScalarNode) and node.tag == _STR:
            try:
                argv = shlex.split(str(node.value))
            except ValueError as exc:
                got = f"{_quote(str(node.value))} ({str(exc).lower()})"
                self.expected(field, "a command line with balanced quotes", got)
                return None
        elif (items := self.field_list(field)) is not None:
            for item in items:
                # Numbers are fine as arguments (`[train, --epochs, 5]`); booleans are ambiguous.
                if isinstance(item.node, ScalarNode) and item.node.tag in (_STR, _INT, _FLOAT):
                    argv.append(str(item.node.value))
                else:
                    self.expected(item, "an argument (a string or a number)")
                    return None
        if not argv or not argv[0]:
            self.expected(field, what)
            return None
        return tuple(argv)

    def duration(self, field: _Field) -> float | None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag in (_STR, _INT, _FLOAT):
            value = self.construct(node)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                try:
                    return parse_duration(value)
                except ValueError:
                    pass
        self.expected(field, DURATION_EXPECTED)
        return None

    def memory(self, field: _Field) -> int | None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag == _STR:
            try:
                return parse_memory(str(node.value))
            except ValueError:
                pass
        self.expected(field, MEMORY_EXPECTED)
        return None

    def schedule(self, field: _Field) -> str | None:
        node = field.node
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            self.expected(field, CRON_EXPECTED)
            return None
        text = str(node.value)
        try:
            return parse_cron(text).text
        except ValueError as exc:
            self.expected(field, CRON_EXPECTED, f"{_quote(text)} ({exc})")
            return None

    def outputs(self, field: _Field) -> tuple[str, ...] | None:
        patterns = self.texts(field, "glob pattern")
        if patterns is None:
            return None
        if not patterns:
            # Nothing a retrain writes could be committed, so it would never open a PR.
            self.expected(field, "at least one glob pattern", "an empty list")
            return None
        for item in self.field_list(field) or [field]:
            pattern = str(item.node.value)
            # A retrain commits what matches: a pattern outside the repository is a mistake.
            if isinstance(item.node, ScalarNode) and ".." in pattern.strip("/").split("/"):
                self.expected(item, "a glob pattern inside the repository (no ..)", _quote(pattern))
                return None
        return patterns

    def max_candidates(self, field: _Field) -> int | None:
        what = f"an integer from 1 to {MAX_CANDIDATES_LIMIT}"
        value = self.integer(field, what)
        if value is not None and not 1 <= value <= MAX_CANDIDATES_LIMIT:
            self.expected(field, what)
            return None
        return value

    def rank_by(self, field: _Field) -> str | None:
        name = self.text(field, "a metric name")
        if name is not None and "*" in name:
            self.expected(field, "one metric name, without *", _quote(name))
            return None
        return name

    def threshold(self, field: _Field) -> Threshold | None:
        node = field.node
        what = 'a number (absolute) or a percentage like "5%" (relative), not negative'
        if isinstance(node, ScalarNode) and node.tag == _STR:
            percent = _PERCENT.fullmatch(str(node.value))
            if percent and float(percent[1]) >= 0:
                return Threshold(float(percent[1]), relative=True)
        elif isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
            value = self.construct(node)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value) and value >= 0:
                    return Threshold(float(value))
        self.expected(field, what)
        return None

    def get(
        self, entries: dict[str, _Field], key: str, parse: Callable[[_Field], T | None], default: T
    ) -> T:
        """The parsed value of `key`, or `default` when absent or invalid (already reported)."""
        if key not in entries:
            return default
        value = parse(entries[key])
        return default if value is None else value

    # --- sections --------------------------------------------------------------------------

    def config(self, root: Node | None) -> RepoConfig:
        if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
            return RepoConfig()
        top = _Field("", _line(root), root)
        if not isinstance(root, MappingNode):
            self.add(top.line, "top level", f"expected {_of(_SECTIONS)}, got {self.got(root)}")
            return RepoConfig()
        sections = self.mapping(top, _SECTIONS)
        assert sections is not None
        if "version" in sections:
            self.version(sections["version"])

        def section(name: str, keys: Sequence[str]) -> dict[str, _Field] | None:
            if name not in sections:
                return None
            return self.mapping(sections[name], keys)

        triggers = self.triggers(section("triggers", ("code", "data", "drafts")))
        metrics = self.metrics(section("metrics", ("files", "source")))
        evaluate_keys = ("memory", "network", "repeats", "run", "timeout")
        evaluate = self.evaluate(section("evaluate", evaluate_keys))
        retrain_keys = (
            *("max_candidates", "memory", "network", "on_data", "outputs", "parameters"),
            *("pipeline_file", "rank_by", "run", "runner", "schedule"),
        )
        retrain = self.retrain(section("retrain", retrain_keys))
        semaphore = self.semaphore(section("semaphore", ("pipeline_file", "project_id")))
        gates = self.gates(sections.get("gates"))
        deploy_keys = (
            *("allow_self_approval", "approvers", "memory", "network", "on"),
            *("promotion", "run"),
        )
        deploy = self.deploy(sections.get("deploy"), section("deploy", deploy_keys))
        monitor_keys = ("env", "gates", "on_breach", "window")
        monitor = self.monitor(section("monitor", monitor_keys))
        self.requirements(metrics, evaluate, retrain, semaphore)
        return RepoConfig(
            1, triggers, metrics, evaluate, retrain, semaphore, gates, deploy, monitor
        )

    def version(self, field: _Field) -> None:
        node = field.node
        if isinstance(node, ScalarNode) and node.tag == _INT and self.construct(node) == 1:
            return
        self.expected(field, "1 (the only version this mlgate understands)")

    def triggers(self, entries: dict[str, _Field] | None) -> Triggers:
        default = Triggers()
        if entries is None:
            return default
        return Triggers(
            data=self.get(entries, "data", lambda f: self.texts(f, "glob pattern"), default.data),
            code=self.get(entries, "code", lambda f: self.texts(f, "glob pattern"), default.code),
            drafts=self.get(entries, "drafts", self.boolean, default.drafts),
        )

    def metrics(self, entries: dict[str, _Field] | None) -> MetricsConfig:
        if entries is None:
            return MetricsConfig()
        source = self.get(entries, "source", lambda f: self.choice(f, METRICS_SOURCES), "git")
        return MetricsConfig(
            files=self.get(entries, "files", lambda f: self.texts(f, "path"), ()),
            source=cast(MetricsSource, source),
        )

    def evaluate(self, entries: dict[str, _Field] | None) -> EvaluateConfig:
        default = EvaluateConfig()
        if entries is None:
            return default
        return EvaluateConfig(
            run=self.get(entries, "run", self.command, None),
            timeout=self.get(entries, "timeout", self.duration, default.timeout),
            repeats=self.get(
                entries, "repeats", lambda f: self.positive(f, "an integer of at least 1"), 1
            ),
            network=self.get(entries, "network", self.boolean, default.network),
            memory=self.get(entries, "memory", self.memory, default.memory),
        )

    def positive(self, field: _Field, what: str) -> int | None:
        value = self.integer(field, what)
        if value is not None and value < 1:
            self.expected(field, what)
            return None
        return value

    def retrain(self, entries: dict[str, _Field] | None) -> RetrainConfig:
        default = RetrainConfig()
        if entries is None:
            return default
        runner = self.get(entries, "runner", lambda f: self.choice(f, RUNNERS), "local")
        config = RetrainConfig(
            runner=cast(Runner, runner),
            run=self.get(entries, "run", self.command, None),
            pipeline_file=self.get(
                entries, "pipeline_file", lambda f: self.text(f, "a path"), None
            ),
            parameters=self.parameters(entries.get("parameters")),
            network=self.get(entries, "network", self.boolean, default.network),
            memory=self.get(entries, "memory", self.memory, default.memory),
            on_data=self.get(entries, "on_data", self.boolean, default.on_data),
            schedule=self.get(entries, "schedule", self.schedule, None),
            outputs=self.get(entries, "outputs", self.outputs, default.outputs),
            max_candidates=self.get(
                entries, "max_candidates", self.max_candidates, default.max_candidates
            ),
            rank_by=self.get(entries, "rank_by", self.rank_by, None),
        )
        if "retrain.runner" in self.reported:
            return config  # with an invalid runner, what else is needed is unknown
        runner_line = entries["runner"].line if "runner" in entries else self.lines["retrain"]
        if config.runner == "local":
            if config.run is None and "run" not in entries:
                self.required("retrain.runner", "local", "retrain.run", "a command", runner_line)
            if "pipeline_file" in entries:
                self.expected(
                    entries["pipeline_file"],
                    "no pipeline_file with retrain.runner: local (that runs retrain.run)",
                )
        else:
            if "pipeline_file" not in entries:
                self.required(
                    "retrain.runner", "semaphore", "retrain.pipeline_file", "a path", runner_line
                )
            if "run" in entries:
                self.expected(
                    entries["run"],
                    "no run with retrain.runner: semaphore (that starts retrain.pipeline_file)",
                )
        return config

    def parameters(self, field: _Field | None) -> tuple[Parameter, ...]:
        if field is None:
            return ()
        entries = self.mapping(field, None, "a mapping of parameter names to their specs")
        if entries is None:
            return ()
        parameters: list[Parameter] = []
        env_names: dict[str, str] = {}
        for name, spec_field in entries.items():
            if not _PARAMETER_NAME.fullmatch(name):
                self.expected(
                    spec_field,
                    "a name of letters, digits and _ (it becomes MLGATE_PARAM_<NAME>)",
                    _quote(name),
                )
                continue
            # Names reach runs upper-cased, so `lr` and `LR` would overwrite each other.
            if name.upper() in env_names:
                other = env_names[name.upper()]
                self.expected(
                    spec_field,
                    f'a name that differs from "{other}" in more than case'
                    f" (both become MLGATE_PARAM_{name.upper()})",
                    _quote(name),
                )
                continue
            env_names[name.upper()] = name
            parameter = self.parameter(name, spec_field)
            if parameter is not None:
                parameters.append(parameter)
        return tuple(parameters)

    def parameter(self, name: str, field: _Field) -> Parameter | None:
        entries = self.mapping(field, _PARAMETER_KEYS)
        if entries is None:
            return None
        before = len(self.problems)
        kind = cast(
            ParameterType,
            self.get(entries, "type", lambda f: self.choice(f, PARAMETER_TYPES), "string"),
        )
        if len(self.problems) > before:
            return None  # without a valid type, neither choices nor default can be checked
        numeric = kind in ("int", "float")
        bounds: dict[str, float] = {}
        for key in ("min", "max"):
            if key not in entries:
                continue
            if not numeric:
                self.expected(
                    entries[key],
                    f"no {key} for a {kind} parameter (only int and float have bounds)",
                )
                continue
            what = "an integer" if kind == "int" else "a number"
            value = self.number(entries[key], what, integer=kind == "int")
            if value is not None:
                bounds[key] = value
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            got = _number_text(bounds["min"])
            self.expected(entries["min"], f"at most max ({_number_text(bounds['max'])})", got)
        choices: tuple[str, ...] = ()
        if "choices" in entries:
            items = self.field_list(entries["choices"])
            if not items:
                self.expected(entries["choices"], f"a non-empty list of {kind} values")
            else:
                values = [self.typed(item, kind) for item in items]
                choices = tuple(value for value in values if value is not None)
        required = self.get(entries, "required", self.boolean, False)
        default: str | None = None
        if "default" in entries:
            default_field = entries["default"]
            default = self.typed(default_field, kind)
            if required:
                self.expected(default_field, "no default for a required parameter")
            elif default is not None:
                check = Parameter(name, kind, choices, bounds.get("min"), bounds.get("max"))
                if _parameter_value(check, default)[0] is None:
                    self.expected(default_field, f"a default that is {describe_accepted(check)}")
        if len(self.problems) > before:
            return None
        return Parameter(
            name, kind, choices, bounds.get("min"), bounds.get("max"), required, default
        )

    def typed(self, field: _Field, kind: ParameterType) -> str | None:
        """The canonical string of a YAML value of a parameter's type."""
        if kind == "string":
            node = field.node
            if isinstance(node, ScalarNode) and node.tag == _STR:
                return str(node.value)
            self.expected(field, "a string")
            return None
        if kind == "bool":
            flag = self.boolean(field)
            return None if flag is None else ("true" if flag else "false")
        if kind == "int":
            integer = self.integer(field, "an integer")
            return None if integer is None else str(integer)
        number = self.number(field, "a number")
        return None if number is None else repr(float(number))

    def semaphore(self, entries: dict[str, _Field] | None) -> SemaphoreConfig:
        if entries is None:
            return SemaphoreConfig()
        return SemaphoreConfig(
            project_id=self.get(
                entries, "project_id", lambda f: self.text(f, "a Semaphore project id"), None
            ),
            pipeline_file=self.get(
                entries, "pipeline_file", lambda f: self.text(f, "a path"), None
            ),
        )

    def gates(self, field: _Field | None) -> tuple[Gate, ...]:
        if field is None:
            return ()
        entries = self.mapping(field, None, "a mapping of metric names to gates")
        if entries is None:
            return ()
        gates = [self.gate(metric, gate_field) for metric, gate_field in entries.items()]
        return tuple(gate for gate in gates if gate is not None)

    def gate(self, metric: str, field: _Field) -> Gate | None:
        start = len(self.problems)
        entries = self.mapping(field, _GATE_KEYS)
        if entries is None:
            return None
        # A gate with no threshold can never fail, so `accuracy: {}` would look like a gate
        # while gating nothing. A misspelt key (already reported) is not reported twice.
        if len(self.problems) == start and not any(key in entries for key in _THRESHOLD_KEYS):
            node = field.node
            got = "only direction" if "direction" in entries else "nothing"
            if isinstance(node, MappingNode) and not node.value:
                got = "an empty mapping"
            self.expected(field, "at least one threshold: min, max, max_drop or max_rise", got)
            return None
        before = len(self.problems)
        direction = cast(
            Direction,
            self.get(entries, "direction", lambda f: self.choice(f, DIRECTIONS), "higher"),
        )
        direction_valid = len(self.problems) == before
        low = self.get(entries, "min", self.number, None)
        high = self.get(entries, "max", self.number, None)
        if low is not None and high is not None and low > high:
            self.expected(entries["min"], f"at most max ({_number_text(high)})", _number_text(low))
        max_drop = self.get(entries, "max_drop", self.threshold, None)
        max_rise = self.get(entries, "max_rise", self.threshold, None)
        if direction_valid and direction == "lower" and "max_drop" in entries:
            self.expected(
                entries["max_drop"],
                "max_rise for a metric with direction: lower (lower is better, so a drop"
                " is an improvement)",
                "max_drop",
            )
        if direction_valid and direction == "higher" and "max_rise" in entries:
            self.expected(
                entries["max_rise"],
                "max_drop for a metric where higher is better (a rise is an improvement;"
                " set direction: lower if lower is better)",
                "max_rise",
            )
        if len(self.problems) > before:
            return None
        return Gate(metric, direction, low, high, max_drop, max_rise)

    def deploy(self, field: _Field | None, entries: dict[str, _Field] | None) -> DeployConfig:
        if field is None or entries is None:
            return DeployConfig()
        config = DeployConfig(
            promotion=self.get(
                entries, "promotion", lambda f: self.text(f, "a Semaphore promotion name"), None
            ),
            run=self.get(entries, "run", self.command, None),
            approvers=self.approvers(entries.get("approvers")),
            allow_self_approval=self.get(entries, "allow_self_approval", self.boolean, False),
            on=cast(
                DeployOn, self.get(entries, "on", lambda f: self.choice(f, DEPLOY_ON), "merge")
            ),
            network=self.get(entries, "network", self.boolean, DeployConfig.network),
            memory=self.get(entries, "memory", self.memory, DeployConfig.memory),
        )
        given = [key for key in ("promotion", "run") if key in entries]
        if len(given) != 1:
            got = "both" if given else "neither"
            self.expected(field, "exactly one of promotion or run", got)
        return config

    def monitor(self, entries: dict[str, _Field] | None) -> MonitorConfig | None:
        if entries is None:
            return None
        default = MonitorConfig()
        env_what = "an environment name (letters, digits, '.', '_' or '-')"
        on_breach = self.get(entries, "on_breach", self.breach_actions, default.on_breach)
        return MonitorConfig(
            env=self.get(entries, "env", lambda f: self.text(f, env_what, _ENV_NAME), default.env),
            gates=self.gates(entries.get("gates")),
            window=self.get(
                entries, "window", lambda f: self.positive(f, "an integer of at least 1"), 3
            ),
            on_breach=on_breach,
        )

    def breach_actions(self, field: _Field) -> tuple[str, ...] | None:
        if isinstance(field.node, ScalarNode) and field.node.tag == _STR:
            single = self.choice(field, MONITOR_ACTIONS)
            return None if single is None else (single,)
        items = self.field_list(field)
        if items is None:
            self.expected(field, "a list of " + ", ".join(MONITOR_ACTIONS))
            return None
        chosen = [self.choice(item, MONITOR_ACTIONS) for item in items]
        return tuple(dict.fromkeys(c for c in chosen if c is not None))

    def approvers(self, field: _Field | None) -> Approvers:
        if field is None:
            return Approvers()
        keys = ("permission", "teams", "users")
        entries = self.mapping(field, keys)
        if entries is None:
            return Approvers()
        if not entries:
            self.expected(field, f"at least one of {', '.join(keys)}")
            return Approvers()
        return Approvers(
            permission=self.get(entries, "permission", lambda f: self.choice(f, PERMISSIONS), None),
            users=self.get(entries, "users", lambda f: self.handles(f, "GitHub login"), ()),
            teams=self.get(entries, "teams", lambda f: self.handles(f, "team slug"), ()),
        )

    def handles(self, field: _Field, item: str) -> tuple[str, ...] | None:
        values = self.texts(field, item, _WORD)
        # `@alice` and `alice` are the same login; GitHub's API wants it without the `@`.
        return None if values is None else tuple(value.lstrip("@") for value in values)

    def requirements(
        self,
        metrics: MetricsConfig,
        evaluate: EvaluateConfig,
        retrain: RetrainConfig,
        semaphore: SemaphoreConfig,
    ) -> None:
        """Settings that another section's choice makes necessary."""
        invalid = self.reported
        if "metrics.source" in self.lines and "metrics.source" not in invalid:
            line = self.lines["metrics.source"]
            if metrics.source == "run" and evaluate.run is None and "evaluate.run" not in invalid:
                self.required("metrics.source", "run", "evaluate.run", "a command", line)
            if metrics.source == "semaphore":
                if semaphore.project_id is None and "semaphore.project_id" not in invalid:
                    what = "a Semaphore project id"
                    self.required("metrics.source", "semaphore", "semaphore.project_id", what, line)
                if semaphore.pipeline_file is None and "semaphore.pipeline_file" not in invalid:
                    what = "a path"
                    self.required(
                        "metrics.source", "semaphore", "semaphore.pipeline_file", what, line
                    )
        if (
            retrain.runner == "semaphore"
            and semaphore.project_id is None
            and "semaphore.project_id" not in invalid
        ):
            line = self.lines["retrain.runner"]
            what = "a Semaphore project id"
            self.required("retrain.runner", "semaphore", "semaphore.project_id", what, line)


# `read(path, rev)`: the file's bytes at a revision, or None when it does not exist there.
# The bot reads through the contents API (`RepoFiles.read`), `mlgate report` through git.
ReadAt = Callable[[str, str], bytes | None]


def load_config(read: ReadAt, rev: str) -> RepoConfig:
    """`.github/mlgate.yml` at `rev`, or the defaults when absent; `RepoConfigError` if invalid."""
    text = read(CONFIG_PATH, rev)
    return default_config() if text is None else parse_config(text.decode("utf-8", "replace"))
