"""Repository text made safe for a comment: code spans no value can break out of."""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def code_span(text: str, limit: int = 80, table: bool = False) -> str:
    """`text` as one inline code span, on one line, clipped to `limit` characters.

    The fence is one backtick longer than the longest run inside, so no value can close it
    early (CommonMark 6.1); mentions, links and HTML are not read inside a span. In a table
    cell (`table`) a `|` would still end the cell, even inside a span (GFM 4.10), so it is
    escaped.
    """
    # One line: a newline would end a table row or a list item; runs of spaces are shown as one.
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    # A span that starts or ends with a backtick needs a space of padding, which CommonMark
    # strips again.
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}" if text else "` `"
