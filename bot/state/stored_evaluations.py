"""The last evaluation published per PR head, as JSON, so that a decision can show it again."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from bot.core.evaluation_result import Evaluation
from bot.state.pr_heads import PR_STATE_TTL
from bot.state.redis_conn import key


def _key(repo: str, number: int, sha: str) -> str:
    return key("evaluation", repo, number, sha)


def to_json(evaluation: Evaluation, neutral: bool) -> str:
    """The evaluation and whether its check was neutral (untrusted code that did not run)."""
    return json.dumps({"evaluation": dataclasses.asdict(evaluation), "neutral": neutral})


def from_json(raw: str | bytes) -> tuple[Evaluation, bool]:
    stored = json.loads(raw)
    return _decode(Evaluation, stored["evaluation"]), bool(stored["neutral"])


def save(
    conn: redis.Redis, repo: str, number: int, sha: str, evaluation: Evaluation, neutral: bool
) -> None:
    conn.set(_key(repo, number, sha), to_json(evaluation, neutral), ex=PR_STATE_TTL)


def load(conn: redis.Redis, repo: str, number: int, sha: str) -> tuple[Evaluation, bool] | None:
    """The evaluation published for `sha` and whether it was neutral; None if there is none
    (or only one an older mlgate stored in another format: it is evaluated again)."""
    raw = conn.get(_key(repo, number, sha))
    if not isinstance(raw, bytes):
        return None
    try:
        return from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


def _decode(hint: Any, value: Any) -> Any:
    """`value` as read from JSON, rebuilt as the type `hint` of an Evaluation field says:
    dataclasses from objects, tuples from arrays; scalars and `Any` stay as they are."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        # Unions of dataclasses never occur in an Evaluation: one option, or scalars only.
        return _decode(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        names = [f.name for f in dataclasses.fields(hint) if f.name in value]
        return hint(**{name: _decode(hints[name], value[name]) for name in names})
    if origin is not None and isinstance(origin, type):
        args = typing.get_args(hint)
        if issubclass(origin, Mapping):
            return {k: _decode(args[1], v) for k, v in value.items()}
        if issubclass(origin, Sequence) and not issubclass(origin, str):
            return tuple(_decode(args[0], v) for v in value)
    return value
