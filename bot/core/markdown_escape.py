"""Text from a repository in GitHub Markdown: as code spans or escaped, never live Markdown."""

from __future__ import annotations

import bisect
import re

# Shown where a C0/C1 control or a bidirectional override was: such characters could hide
# text or reorder what the bot wrote around them.
REPLACEMENT = "\ufffd"
# Zero-width space: breaks an @mention, an e-mail autolink or an issue reference (GitHub finds
# those in the rendered text, so a backslash escape does not stop them).
ZWSP = "\u200b"

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BACKTICKS = re.compile("`+")
# Characters that start Markdown inline syntax: code, emphasis, links and images, raw HTML and
# autolinks, entities, tables, strikethrough, math, headings; all are escaped with `\`.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#&!$])")
# GFM autolinks that escaping single characters would leave live: `scheme://` (found at the
# `:`) and `www.` (found at the `w`).
_URL_SCHEME = re.compile(r":(?=//)")
_WWW = re.compile(r"(?<=www)\.")
_MENTION = re.compile("@")
# A mention of one user as mlgate writes it: a whole word, a GitHub login (letters, digits and
# hyphens, at most 39), not a team (`@org/team`) and not the domain of an e-mail address.
_USER_MENTION = re.compile(r"(?<!\S)(@)(?=[A-Za-z0-9][A-Za-z0-9-]{0,38}(?![\w/-]))|@")
_REFERENCE = re.compile(r"#(?=\w)|(?<![\w-])GH-(?=\d)", re.I)
# Block syntax that only counts at the start of a line: list items, setext underlines and
# ordered list items (`-`, `+`, `=`, `1.`, `1)`); the others are escaped everywhere.
_LINE_START = re.compile(r"^(?:([-+=])(?=[-+= ]|$)|(\d{1,9})([.)])(?= |$))")


def one_line(text: str) -> str:
    """`text` on one line: whitespace runs become one space, controls become U+FFFD."""
    # Whitespace first: newlines and tabs are controls too, but they become spaces.
    return _CONTROLS.sub(REPLACEMENT, " ".join(str(text).split()))


def clip(text: str, limit: int | None) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when anything was cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def code(text: str, limit: int | None = None) -> str:
    """`text` (one line, clipped) as a code span that nothing in it can end.

    As CommonMark has it: the fence is one backtick longer than the longest run of backticks in
    the text, and a space pads text that starts or ends with a backtick (the renderer strips
    it). Inside, nothing is a link, an image, HTML or a mention. Empty text gives "".
    """
    text = clip(one_line(text), limit)
    if not text:
        return ""
    # Keeps the raw comment free of anything a scanner could take for one of our markers.
    text = text.replace("<!--", "<!-\u200c-")
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape(text: str, limit: int | None = None, *, line_start: bool = True) -> str:
    """`text` (one line, clipped) as Markdown that GitHub shows literally.

    Markdown syntax is backslash-escaped, and a zero-width space goes around each `@` and after
    `#` or `GH-` before a word, so no mention, e-mail link or issue reference comes out of it. With
    `line_start`, a leading list or underline marker is escaped too (not needed in a table cell,
    which holds no blocks).
    """
    return _escaped(clip(one_line(text), limit), line_start=line_start)


def _escaped(text: str, line_start: bool, users: bool = False) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    text = _URL_SCHEME.sub(r"\\:", text)
    text = _WWW.sub(r"\\.", text)
    if users:
        text = _USER_MENTION.sub(lambda m: "@" if m[1] else f"{ZWSP}@{ZWSP}", text)
    else:
        text = _MENTION.sub(f"{ZWSP}@{ZWSP}", text)
    text = _REFERENCE.sub(lambda m: m[0] + ZWSP, text)
    if not line_start:
        return text
    return _LINE_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def inline(text: str, limit: int | None = None, *, users: bool = False) -> str:
    """A line of mlgate's own Markdown that may hold repository text: its code spans are kept
    (with fences nothing inside can end), everything else is escaped.

    Code spans are found as CommonMark finds them: a run of backticks closed by the next run of
    the same length; an unclosed run is text. Whatever the split, the result is made only of
    code spans and escaped text, so nothing in it can become a link, HTML or a mention. With
    `users`, an `@login` written as a whole word stays a mention of that one user (mlgate's
    notes name who acted); teams and e-mail addresses are still broken.
    """
    text = clip(one_line(text), limit)
    runs = list(_BACKTICKS.finditer(text))
    by_length: dict[int, list[int]] = {}
    for index, run in enumerate(runs):
        by_length.setdefault(len(run[0]), []).append(index)
    parts: list[str] = []
    done = 0  # end of the text already turned into parts
    index = 0
    while index < len(runs):
        opener = runs[index]
        same = by_length[len(opener[0])]
        later = same[bisect.bisect_right(same, index) :]
        if opener.start() < done or not later:
            index += 1
            continue
        closer = runs[later[0]]
        parts.append(_escaped(text[done : opener.start()], not parts, users))
        content = text[opener.end() : closer.start()]
        if len(content) > 1 and content[0] == content[-1] == " " and content.strip(" "):
            content = content[1:-1]  # CommonMark strips one space from each side
        parts.append(code(content) if content.strip(" ") else "")
        done = closer.end()
        index = later[0] + 1
    parts.append(_escaped(text[done:], not parts, users))
    return "".join(parts)


def table_cell(markdown: str) -> str:
    """Inline Markdown made safe inside a table cell: every `|` escaped.

    GFM splits a row at each `|` before reading any inline syntax, code spans included, and
    takes `\\|` as a pipe of the cell (after any backslashes before it); the backslash is then
    dropped, so `|` inside a code span still shows as `|`.
    """
    return markdown.replace("|", "\\|")


def plain(text: str, limit: int | None = None) -> str:
    """Text for a field GitHub shows as plain text (a check-run title, an annotation)."""
    return clip(one_line(text), limit)


def code_span(text: str, limit: int = 80, table: bool = False) -> str:
    """`code` clipped to `limit`, never empty (a blank span shows that a value was empty); in a
    table cell (`table`) a `|` would still end the cell even inside a span (GFM 4.10), so it
    is escaped."""
    span = code(text, limit) or "` `"
    return span.replace("|", "\\|") if table else span
