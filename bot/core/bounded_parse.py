"""Parsing untrusted YAML, JSON and TOML under limits: size, nesting depth, nodes after aliases."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any, cast

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, CollectionStartEvent, Event, ScalarEvent
from yaml.nodes import Node
from yaml.parser import Parser

from bot.errors import FileLimitExceeded

# Every file read from a PR head (dvc.lock, *.dvc, dvc.yaml, params and metrics files) is parsed
# under these limits (ARCHITECTURE.md, "Untrusted files and text"). Real files are far below
# each; hostile ones are not: a 565-byte YAML alias bomb expands to 1.1 M nodes, and 200,000
# nested `[` overflow the parsers' stacks.
MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 100
# A node is a mapping, a sequence, a key or a scalar value, as YAML composes them (`{"a": 1}`
# is 3); a YAML alias counts as every node it stands for.
MAX_NODES = 100_000

_PREFIX = "over a parsing limit: "


def _too_deep() -> FileLimitExceeded:
    return FileLimitExceeded(f"{_PREFIX}nested deeper than {MAX_DEPTH} levels")


def _too_many(after_aliases: bool = False) -> FileLimitExceeded:
    how = " after YAML alias expansion" if after_aliases else ""
    return FileLimitExceeded(
        f"{_PREFIX}more than {MAX_NODES:,} nodes (keys, values and collections){how}"
    )


def check_size(content: str | bytes) -> None:
    """Refuse content of more than 10 MiB (as UTF-8 bytes)."""
    size = len(content)
    if isinstance(content, str) and size <= MAX_BYTES:
        size = len(content.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise FileLimitExceeded(f"{_PREFIX}{size:,} bytes, more than 10 MiB ({MAX_BYTES:,} bytes)")


def _text(content: str | bytes) -> str:
    check_size(content)
    # DVC reads its files as UTF-8 and skips a byte-order mark; a decoding error propagates.
    return content.decode("utf-8-sig") if isinstance(content, bytes) else content


# ---------------------------------------------------------------------------- YAML


class _Limits(Parser, Composer):
    """Counts nodes, depth and scalar characters while composing, before anything expands.

    An anchored node's totals are kept, so each alias adds what it stands for without being
    walked: a billion-laughs file is refused after reading a few hundred bytes of it.
    """

    _nodes: int
    _chars: int
    _depth: int
    _reach: int
    _totals: dict[int, tuple[int, int, int]]

    def compose_document(self) -> Node | None:
        self._nodes = self._chars = self._depth = self._reach = 0
        self._totals = {}  # id(anchored node) -> (nodes, characters, height)
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is PyYAML's own error
                totals = self._totals.get(id(target))
                if totals is None:
                    # The anchored collection is still open: the alias is inside it.
                    raise FileLimitExceeded(
                        f"{_PREFIX}a YAML alias inside its own anchor expands without end"
                        f" (more than {MAX_NODES:,} nodes)"
                    )
                nodes, chars, height = totals
                self._count(nodes, chars, self._depth + height)
            return super().compose_node(parent, index)
        parent_depth = self._depth
        depth = parent_depth + (1 if isinstance(event, CollectionStartEvent) else 0)
        before = (self._nodes, self._chars, self._reach)
        self._reach = parent_depth
        self._count(1, len(event.value) if isinstance(event, ScalarEvent) else 0, depth)
        self._depth = depth
        node = super().compose_node(parent, index)
        self._depth = parent_depth
        anchor = getattr(event, "anchor", None)
        if anchor is not None and node is not None:
            self._totals[id(node)] = (
                self._nodes - before[0],
                self._chars - before[1],
                self._reach - parent_depth,
            )
        self._reach = max(before[2], self._reach)
        return node

    def _count(self, nodes: int, chars: int, depth: int) -> None:
        self._nodes += nodes
        self._chars += chars
        self._reach = max(self._reach, depth)
        if depth > MAX_DEPTH:
            raise _too_deep()
        if self._nodes > MAX_NODES:
            raise _too_many(after_aliases=True)
        if self._chars > MAX_BYTES:
            # Without aliases the text of the scalars is never longer than the file.
            raise FileLimitExceeded(
                f"{_PREFIX}YAML aliases expand it to more than 10 MiB ({MAX_BYTES:,} characters)"
            )


_BOUNDED: dict[type[yaml.SafeLoader], type[yaml.SafeLoader]] = {}


def bounded_loader(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`base` (a SafeLoader, with its resolvers) that raises `FileLimitExceeded` over a limit."""
    if base not in _BOUNDED:
        bounded = type(f"Bounded{base.__name__}", (_Limits, base), {})
        _BOUNDED[base] = cast(type[yaml.SafeLoader], bounded)
    return _BOUNDED[base]


def load_yaml(content: str | bytes, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The data of a YAML document read with `loader`, within the limits."""
    return yaml.load(_text(content), Loader=bounded_loader(loader))  # noqa: S506 - safe loader


def compose_yaml(
    content: str | bytes, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> Node | None:
    """The node tree of a YAML document composed with `loader`, within the limits."""
    return yaml.compose(_text(content), Loader=bounded_loader(loader))


# ---------------------------------------------------------------------------- JSON

# One token per match: a string, an opening bracket, a run of closing ones, a number or literal,
# a run of separators; anything else (a quote that never closes) stops the scan.
_JSON_TOKEN = re.compile(
    r'"(?:[^"\\]++|\\.)*+"|(?P<open>[\[{])|(?P<close>[\]}]++)|(?P<sep>[\s:,]++)'
    r'|(?P<bad>")|[^\s\[\]{}:,"]++',
    re.S,
)


def _check_json(text: str) -> None:
    # Python's decoder recurses once per level (200,000 `[` raise RecursionError), so the depth
    # is measured by a flat scan first. The decoder reads left to right and stops at the first
    # error, so once the scan meets invalid text, the decoder never gets past it either.
    depth = nodes = 0
    for token in _JSON_TOKEN.finditer(text):
        kind = token.lastgroup
        if kind == "sep":
            continue
        if kind == "close":
            depth -= token.end() - token.start()
            continue
        if kind == "bad":
            return
        nodes += 1
        if kind == "open":
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep()
        if nodes > MAX_NODES:
            raise _too_many()


def load_json(content: str | bytes) -> Any:
    """The data of a JSON document, within the limits; `ValueError` if it is not JSON."""
    text = _text(content)
    _check_json(text)
    return json.loads(text)


# ---------------------------------------------------------------------------- TOML

_TOML_TOKEN = re.compile(
    r'"""(?:[^"\\]++|\\.|"{1,2}(?!"))*+"{3,5}'
    r"|'''(?:[^']++|'{1,2}(?!'))*+'{3,5}"
    r'|"(?:[^"\\\n]++|\\.)*+"'
    r"|'[^'\n]*+'"
    r"|#[^\n]*+"
    r"|(?P<open>[\[{])|(?P<close>[\]}])|(?P<dot>\.)|(?P<sep>[=,\n])"
    r"|(?P<bad>[\"'])"
    r"|[^\"'#\[\]{}.=,\n]++",
    re.S,
)


def _check_toml(text: str) -> None:
    # tomllib recurses once per bracket level, and its work on a dotted key grows with the
    # square of the key's parts (a key of 100,000 parts exhausts memory). Either kind of depth
    # is at most the depth of the data, so a flat scan can refuse them before tomllib runs.
    depth = dots = 0
    for token in _TOML_TOKEN.finditer(text):
        kind = token.lastgroup
        if kind == "bad":
            return  # an unclosed string: tomllib stops there
        if kind == "dot":
            dots += 1
            if dots >= MAX_DEPTH:  # a key of more than 100 parts
                raise _too_deep()
            continue
        if kind is not None:  # a bracket or a separator ends a key
            dots = 0
        if kind == "open":
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep()
        elif kind == "close":
            depth -= 1


def check_tree(data: Any) -> None:
    """Depth and nodes of parsed data, counted as YAML composes them, without recursion."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(data, 0)]  # a value and the depth of its container
    while stack:
        value, outer = stack.pop()
        nodes += 1
        if isinstance(value, dict | list):
            if outer + 1 > MAX_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                nodes += len(value)  # the keys
                value = value.values()
            stack.extend((child, outer + 1) for child in value)
        if nodes > MAX_NODES:
            raise _too_many()


def load_toml(content: str | bytes) -> Any:
    """The data of a TOML document, within the limits; `ValueError` if it is not TOML."""
    text = _text(content)
    _check_toml(text)
    data = tomllib.loads(text)
    check_tree(data)
    return data
