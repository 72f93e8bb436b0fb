"""The `/retrain` experiment matrix: comma lists to candidates c1…cN, and their leaderboard."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.core.config import MAX_CANDIDATES_LIMIT, Parameter, validate_parameters
from bot.core.gates import Direction, Gate, GateResult
from bot.core.markdown_escape import code_span
from bot.core.metrics import Stat, format_value
from bot.errors import ParameterError

CandidateStatus = Literal["passed", "failed", "running", "queued", "superseded"]
# Failed gates named in a leaderboard cell; the others are counted.
GATE_NAMES_SHOWN = 2
_VALUE_CHARS = 40  # of a parameter value shown in the leaderboard
_REASON_CHARS = 120  # of why a candidate failed
# The leaderboard in the comment's data block (24,000 characters in all): values are cut to
# this many characters, and past the limit only the varied parameters are kept.
JSON_VALUE_CHARS = 200
LEADERBOARD_JSON_LIMIT = 12_000
_WHITESPACE = " \t\r\n"  # shlex's whitespace: the command parser splits words the same way


# ---------------------------------------------------------------------------- the words


@dataclass(frozen=True)
class Word:
    """One shell-like word of a `/retrain` line, split at its unquoted, unescaped commas.

    `text` is the word exactly as `shlex.split` gives it (which the command parser uses);
    `items` are its comma-separated parts and `quoted` says which held a quote (so `""` is
    an empty value on purpose, and `a,,b` a mistake).
    """

    items: tuple[str, ...]
    quoted: tuple[bool, ...]

    @property
    def text(self) -> str:
        return ",".join(self.items)


class _WordBuilder:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.quoted: list[bool] = []
        self.chars: list[str] = []
        self.had_quote = False

    def add(self, char: str) -> None:
        self.chars.append(char)

    def quote(self) -> None:
        self.had_quote = True

    def split(self) -> None:
        self.items.append("".join(self.chars))
        self.quoted.append(self.had_quote)
        self.chars, self.had_quote = [], False

    def word(self) -> Word:
        self.split()
        return Word(tuple(self.items), tuple(self.quoted))


def split_words(text: str) -> list[Word] | str:
    """The words of `text` split as `shlex.split` does (POSIX rules), commas marked.

    Quotes (`'…'` literal, `"…"` with `\\"` and `\\\\` escaped) and a backslash outside
    quotes protect a comma, so `model="a,b",c` has the values `a,b` and `c`. Returns the
    problem as text for an unclosed quote or a trailing backslash.
    """
    words: list[Word] = []
    current: _WordBuilder | None = None
    quote: str | None = None
    chars = iter(text)
    for char in chars:
        if quote == "'":
            if char == "'":
                quote = None
            else:
                assert current is not None
                current.add(char)
            continue
        if quote == '"':
            assert current is not None
            if char == '"':
                quote = None
            elif char == "\\":
                following = next(chars, None)
                if following is None:
                    break  # the quote is not closed: reported below
                if following not in ('"', "\\"):
                    current.add("\\")
                current.add(following)
            else:
                current.add(char)
            continue
        if char in _WHITESPACE:
            if current is not None:
                words.append(current.word())
                current = None
            continue
        if current is None:
            current = _WordBuilder()
        if char in ("'", '"'):
            quote = char
            current.quote()
        elif char == "\\":
            following = next(chars, None)
            if following is None:
                return "the line ends with a \\ that escapes nothing; remove it"
            current.add(following)
        elif char == ",":
            current.split()
        else:
            current.add(char)
    if quote is not None:
        return 'a quote is not closed; close it, e.g. name="two words"'
    if current is not None:
        words.append(current.word())
    return words


# ---------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One combination of the matrix: every parameter (defaults filled in) as strings.

    `varied` are the parameters whose values differ between candidates, in the order
    written; the leaderboard shows them.
    """

    number: int
    parameters: Mapping[str, str]
    varied: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"c{self.number}"


@dataclass(frozen=True)
class Matrix:
    """The candidates of one `/retrain`, c1…cN in a stable order (the last key varies fastest)."""

    candidates: tuple[Candidate, ...]
    keys: tuple[str, ...] = ()  # the parameters written, in order

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"candidate": c.name, "parameters": dict(c.parameters), "varied": dict(c.varied)}
            for c in self.candidates
        ]


def _brief(text: str, limit: int = 60) -> str:
    return '"' + (text if len(text) <= limit else text[:limit] + "…") + '"'


def _written(words: Sequence[Word]) -> tuple[dict[str, list[tuple[str, bool]]], list[str]]:
    """`{name: [(value, quoted), …]}` in the order written, and what is malformed."""
    problems: list[str] = []
    seen: dict[str, list[str]] = {}
    written: dict[str, list[tuple[str, bool]]] = {}
    for word in words:
        first = word.items[0]
        if "=" not in first:
            if "=" in word.text:
                problems.append(
                    f"{_brief(word.text)} has a comma before the =; write name=value1,value2"
                )
            else:
                problems.append(f"{_brief(word.text)} is not name=value; write name=value1,value2")
            continue
        key, _, value = first.partition("=")
        if not key:
            problems.append(f"{_brief(word.text)} has no parameter name before the =")
            continue
        seen.setdefault(key, []).append(word.text)
        values = [(value, word.quoted[0])] + list(zip(word.items[1:], word.quoted[1:], strict=True))
        if len(values) > 1 and any(not text and not quoted for text, quoted in values):
            problems.append(
                f"{key} has an empty value in {_brief(word.text)}; remove the extra comma,"
                ' or write "" for an empty value'
            )
            continue
        written.setdefault(key, values)
    for key, texts in seen.items():
        if len(texts) > 1:
            shown = ", ".join(_brief(text) for text in texts)
            problems.append(
                f"{key} is given {len(texts)} times ({shown}); give it once, with its values"
                " separated by commas"
            )
    return written, problems


def _problems_of(specs: Sequence[Parameter], given: Mapping[str, str]) -> list[str]:
    try:
        validate_parameters(specs, given)
    except ParameterError as exc:
        return list(exc.problems)
    return []


def build_matrix(text: str, specs: Sequence[Parameter], max_candidates: int) -> Matrix | list[str]:
    """The candidates of `/retrain <text>`, or every reason it cannot run.

    `text` is the raw argument text (`Command.text`): `shlex` would drop the quotes that
    protect a comma. Each value is validated against its `retrain.parameters` spec; values
    that are the same after validation (`0.1,0.10`) are refused, and so is a product above
    `max_candidates` ("4 candidates > max_candidates 3"). No arguments: one candidate with
    the defaults. A word without commas means what it means to `parse_retrain`.
    """
    words = split_words(text)
    if isinstance(words, str):
        return [words]
    written, problems = _written(words)
    by_name = {spec.name: spec for spec in specs}
    canonical: dict[str, list[str]] = {}
    for key, values in written.items():
        spec = by_name.get(key)
        if spec is None:
            continue  # reported with the whole set below
        kept: dict[str, str] = {}
        for value, _ in values:
            value_problems = _problems_of([spec], {key: value})
            if value_problems:
                problems.extend(value_problems)
                continue
            same = validate_parameters([spec], {key: value})[key]
            if same in kept:
                problems.append(
                    f"{key}={value} is the same value as {key}={kept[same]}; give each value once"
                )
                continue
            kept[same] = value
        canonical[key] = list(kept)
    # Unknown names and missing required parameters, once for the whole line.
    problems.extend(_problems_of(specs, {key: values[0][0] for key, values in written.items()}))
    count = math.prod(len(values) for values in written.values())
    if count > max_candidates:
        problems.append(
            f"{count} candidates > max_candidates {max_candidates}; give fewer values, or raise"
            f" retrain.max_candidates (at most {MAX_CANDIDATES_LIMIT})"
        )
    problems = list(dict.fromkeys(problems))
    if problems:
        return problems
    keys = tuple(written)
    varied = {key for key in keys if len(canonical[key]) > 1}
    candidates = []
    for number, combination in enumerate(itertools.product(*(canonical[k] for k in keys)), 1):
        chosen = dict(zip(keys, combination, strict=True))
        candidates.append(
            Candidate(
                number,
                validate_parameters(specs, chosen),
                tuple((key, chosen[key]) for key in keys if key in varied),
            )
        )
    return Matrix(tuple(candidates), keys)


# ---------------------------------------------------------------------------- leaderboard


@dataclass(frozen=True)
class CandidateOutcome:
    """Where a candidate stands: `passed` means its run finished and no gate failed.

    `value` is its `rank_by` metric at its head (the mean over repeats), `spread` the
    standard deviation over repeats (None: one run), `gates` its gate results. `reason` says
    why a candidate failed without a result (its run exited non-zero, its outputs too big).
    """

    candidate: Candidate
    status: CandidateStatus
    value: float | None = None
    spread: float | None = None
    gates: tuple[GateResult, ...] = ()
    reason: str | None = None

    @property
    def rankable(self) -> bool:
        return (
            self.status == "passed"
            and self.value is not None
            and not isinstance(self.value, bool)
            and math.isfinite(self.value)
        )


@dataclass(frozen=True)
class LeaderboardRow:
    """A candidate's place: `rank` 1… for ranked candidates, None for the others."""

    outcome: CandidateOutcome
    rank: int | None
    best: bool


def rank_direction(gates: Sequence[Gate], rank_by: str) -> Direction:
    """Which way `rank_by` is better: the direction of its gate (`metric` or `path:metric`)."""
    for gate in gates:
        if gate.metric == rank_by or gate.metric.endswith(f":{rank_by}"):
            return gate.direction
    return "higher"


# Unranked candidates follow the ranked ones in this order, each group by candidate number.
_GROUPS: dict[CandidateStatus, int] = {
    "passed": 1,
    "failed": 2,
    "running": 3,
    "queued": 4,
    "superseded": 5,
}


def rank_candidates(
    outcomes: Sequence[CandidateOutcome], direction: Direction
) -> list[LeaderboardRow]:
    """Candidates best first: passed ones with a value by it (ties: lower number first),
    then passed without a value, failed, running, queued and superseded ones by number.

    Exactly one candidate is starred best: the first ranked one, if any is ranked.
    """
    sign = -1.0 if direction == "higher" else 1.0

    def order(outcome: CandidateOutcome) -> tuple[int, float, int]:
        if outcome.rankable:
            assert outcome.value is not None
            return (0, sign * outcome.value, outcome.candidate.number)
        return (_GROUPS[outcome.status], 0.0, outcome.candidate.number)

    rows: list[LeaderboardRow] = []
    rank = 0
    for outcome in sorted(outcomes, key=order):
        if outcome.rankable:
            rank += 1
            rows.append(LeaderboardRow(outcome, rank, rank == 1))
        else:
            rows.append(LeaderboardRow(outcome, None, False))
    return rows


def _value_text(outcome: CandidateOutcome) -> str:
    value = outcome.value
    if value is None or isinstance(value, bool):
        return "—"
    if not math.isfinite(value):
        return str(value)  # nan or inf, said plainly
    text = format_value(value)
    if outcome.spread is not None and math.isfinite(outcome.spread):
        text += f" ± {format_value(outcome.spread)}"
    return text


def _gates_text(outcome: CandidateOutcome) -> str:
    if not outcome.gates:
        return "no gates" if outcome.status in ("passed", "failed") else "—"
    failed = [r for r in outcome.gates if not r.passed]
    if not failed:
        return f"✅ {len(outcome.gates)} passed"
    names = list(dict.fromkeys(r.metric for r in failed))
    shown = ", ".join(
        code_span(name, _VALUE_CHARS, table=True) for name in names[:GATE_NAMES_SHOWN]
    )
    more = f" +{len(names) - GATE_NAMES_SHOWN}" if len(names) > GATE_NAMES_SHOWN else ""
    return f"❌ {len(failed)} of {len(outcome.gates)} failed: {shown}{more}"


def _status_text(outcome: CandidateOutcome) -> str:
    if outcome.reason:
        return f"{outcome.status}: {code_span(outcome.reason, _REASON_CHARS, table=True)}"
    return outcome.status


def _parameters_text(candidate: Candidate) -> str:
    pairs = candidate.varied or tuple(candidate.parameters.items())
    if not pairs:
        return "defaults"
    return " ".join(code_span(f"{key}={value}", _VALUE_CHARS, table=True) for key, value in pairs)


def render_leaderboard(
    outcomes: Sequence[CandidateOutcome], rank_by: str | None, direction: Direction
) -> str:
    """The leaderboard as Markdown: a heading, the table best first (★), how to promote."""
    rows = rank_candidates(outcomes, direction)
    metric = code_span(rank_by, _VALUE_CHARS, table=True) if rank_by else "rank_by"
    better = "higher" if direction == "higher" else "lower"
    count = f"{len(rows)} candidate" + ("" if len(rows) == 1 else "s")
    heading = (
        f"#### Leaderboard: {count} by {code_span(rank_by, _VALUE_CHARS)} ({better} is better)"
        if rank_by
        else f"#### Leaderboard: {count} (no rank_by metric: set retrain.rank_by or a gate)"
    )
    lines = [
        heading,
        "",
        f"| | Candidate | Parameters | {metric} | Gates | Status |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        outcome = row.outcome
        lines.append(
            f"| {'★' if row.best else ''} | {outcome.candidate.name}"
            f" | {_parameters_text(outcome.candidate)} | {_value_text(outcome)}"
            f" | {_gates_text(outcome)} | {_status_text(outcome)} |"
        )
    best = next((row for row in rows if row.best), None)
    if best is not None:
        name = best.outcome.candidate.name
        lines += ["", f"`/promote {name}` commits the outputs of {name} to this branch."]
    return "\n".join(lines) + "\n"


def _finite(value: float | None) -> float | None:
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return None
    return value


def leaderboard_json(
    outcomes: Sequence[CandidateOutcome], rank_by: str | None, direction: Direction
) -> dict[str, Any]:
    """The leaderboard for the comment's data block: plain JSON types, best first.

    Parameter values are cut to JSON_VALUE_CHARS; should the whole still be over
    LEADERBOARD_JSON_LIMIT (many candidates of long values), each candidate keeps only the
    parameters that vary, and `parameters_left_out` says so.
    """
    rows = rank_candidates(outcomes, direction)

    def cut(pairs: Mapping[str, str]) -> dict[str, str]:
        return {key: value[:JSON_VALUE_CHARS] for key, value in pairs.items()}

    data: dict[str, Any] = {
        "rank_by": rank_by,
        "direction": direction,
        "candidates": [
            {
                "candidate": row.outcome.candidate.name,
                "rank": row.rank,
                "best": row.best,
                "status": row.outcome.status,
                "parameters": cut(row.outcome.candidate.parameters),
                "varied": cut(dict(row.outcome.candidate.varied)),
                "value": _finite(row.outcome.value),
                "spread": _finite(row.outcome.spread),
                "gates": (
                    None
                    if not row.outcome.gates
                    else ("passed" if all(r.passed for r in row.outcome.gates) else "failed")
                ),
                "failed_gates": sorted({r.metric for r in row.outcome.gates if not r.passed}),
                "reason": row.outcome.reason[:JSON_VALUE_CHARS] if row.outcome.reason else None,
            }
            for row in rows
        ],
    }
    if len(json.dumps(data, ensure_ascii=False)) > LEADERBOARD_JSON_LIMIT:
        for entry in data["candidates"]:
            entry.pop("parameters")
        data["parameters_left_out"] = True
    return data


def rank_value(
    new: Mapping[str, Mapping[str, Any]], noise: Mapping[str, Stat] | None, rank_by: str | None
) -> tuple[float | None, float | None]:
    """A candidate's `rank_by` metric (`metric` or `path:metric`) among its head metrics
    (`{path: {key: value}}`), and its spread over repeats; (None, None) where it has none,
    or it is not a number."""
    if rank_by is None:
        return None, None
    for path in sorted(new):
        for name, value in new[path].items():
            if rank_by not in (name, f"{path}:{name}"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, None
            stat = (noise or {}).get(f"{path}:{name}")
            return float(value), stat.spread if stat is not None else None
    return None, None
