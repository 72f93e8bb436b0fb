"""Pull-request commands: find them in a comment, check their arguments, word the replies."""

from __future__ import annotations

import bisect
import difflib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from bot.core.config import PERMISSIONS, Parameter, describe_accepted, validate_parameters
from bot.core.markdown_escape import code, escape
from bot.errors import ParameterError

# How a command reads the text after its name.
#   none: nothing may follow (`/deploy to staging` must not quietly deploy to production);
#   words: shell-like words (`key="two words"`);
#   text: the rest of the line as written (a reason may say "don't");
#   ignored: anything may follow and is not used;
#   sha: nothing, or one commit sha (`/evaluate abc1234` approves that commit only).
ArgumentStyle = Literal["none", "words", "text", "ignored", "sha", "candidate"]

WRITE_OR_MORE = "users with write permission or more"
DEPLOY_APPROVERS = "approvers named in deploy.approvers"
ANYONE = "anyone"

OVERRIDE_REASON_LIMIT = 1000  # characters; the reason is recorded and shown on the PR
# /retrain arguments become environment variables of a run; a longer line is a mistake, and the
# cap keeps shlex (pure Python) fast on any comment.
RETRAIN_ARGUMENTS_LIMIT = 10_000
# Deeper quote or list nesting is read as plain text: real comments nest a few levels, and the cap
# keeps each line's work bounded however a comment is built.
MAX_NESTING = 50
_QUOTE_LIMIT = 300  # characters of a command line quoted back in a reply
# Command lines read from one comment; the rest are ignored (and the reply says so). Each one
# costs GitHub calls and a reply's worth of text: a 64 KB comment holds 11,000 of them.
MAX_COMMANDS = 10
# A commit named after /evaluate: an abbreviated (7+) or full SHA-1, in hexadecimal.
_SHA_ARGUMENT = re.compile(r"[0-9a-fA-F]{7,40}")
_NAME_LIMIT = 50  # characters of an unknown command's name echoed back
# A candidate of a /retrain matrix, named as its leaderboard does: c1, c2, … (no leading 0).
_CANDIDATE_ARGUMENT = re.compile(r"[cC]([1-9][0-9]{0,5})")


@dataclass(frozen=True)
class CommandSpec:
    """A command the bot knows: usage, what it does, who may run it, how it reads arguments.

    `permission` is the repository role the bot checks before running it; None means no role
    check (`/help` is open to anyone; `/deploy` is checked against `deploy.approvers`).
    """

    name: str
    usage: str
    description: str
    who: str
    permission: str | None
    arguments: ArgumentStyle


COMMANDS: Mapping[str, CommandSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            CommandSpec(
                "evaluate",
                "/evaluate [sha]",
                "Evaluate the model on this pull request's head commit and update the report;"
                " with a sha, only if that commit is still the head.",
                WRITE_OR_MORE,
                "write",
                "sha",
            ),
            CommandSpec(
                "retrain",
                "/retrain [key=value ...]",
                "Retrain the model with these parameters (defaults for the ones not given);"
                " comma lists (`lr=0.1,0.01`) run every combination as candidates c1…cN,"
                " ranked in a leaderboard.",
                WRITE_OR_MORE,
                "write",
                "words",
            ),
            CommandSpec(
                "promote",
                "/promote cN",
                "Commit candidate N's retrained outputs to this pull request's branch"
                " (same-repository pull requests only); the new head is then evaluated.",
                WRITE_OR_MORE,
                "write",
                "candidate",
            ),
            CommandSpec(
                "override",
                "/override <reason>",
                "Accept the failing quality gate of this commit; the reason is recorded.",
                WRITE_OR_MORE,
                "write",
                "text",
            ),
            CommandSpec(
                "deploy",
                "/deploy",
                "Approve deploying this pull request's model (same as the Approve deploy button).",
                DEPLOY_APPROVERS,
                None,
                "none",
            ),
            CommandSpec("help", "/help", "Show this help.", ANYONE, None, "ignored"),
        )
    }
)


@dataclass(frozen=True)
class Command:
    """One command line of a comment.

    `name` is lower-cased. `text` is everything after the name, stripped (`/override`'s reason).
    `args` are its shell-like words, for commands that take words (`/retrain`); otherwise empty.
    `problems` say why the line cannot run as written (an unclosed quote, a missing reason),
    whatever the configuration; an unknown command has none (it gets the help instead).
    """

    name: str
    args: tuple[str, ...] = ()
    line: str = ""
    lineno: int = 0
    text: str = ""
    problems: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.name in COMMANDS


@dataclass(frozen=True)
class RetrainRequest:
    """The parameters of a retrain, every declared one present, as canonical strings."""

    parameters: Mapping[str, str]


@dataclass(frozen=True)
class CommentCommands:
    """The commands a comment gives, at most MAX_COMMANDS, and how many more it held."""

    commands: tuple[Command, ...]
    ignored: int = 0

    def ignored_note(self) -> str | None:
        """What a reply says about the command lines that were not read, if any."""
        if not self.ignored:
            return None
        lines = "line was" if self.ignored == 1 else "lines were"
        return (
            f"Only the first {MAX_COMMANDS} command lines of a comment are read; "
            f"{self.ignored} more {lines} ignored."
        )


def parse_comment(body: str) -> CommentCommands:
    """The first MAX_COMMANDS commands of a comment (as `parse` finds them), and the count of
    the command lines after them, which are not read further."""
    return _parse(body, MAX_COMMANDS)


def parse(body: str) -> list[Command]:
    """Every command of a pull-request comment, in the order written.

    A command is a line that starts with `/` and a name (a letter, then letters, digits, `_` or
    `-`) ending at a space, a tab or the end of the line; leading spaces and tabs are allowed.
    Lines that GitHub renders inside a fenced code block (``` or ~~~, closed or not), a `>`
    quote (nested, inside a list item, or a lazy line right after a quoted paragraph), an
    HTML comment or another HTML block GitHub does not show (`<script>`, `<style>`,
    `<textarea>`, `<pre>`, `<?`, `<!DOCTYPE`, CDATA) are not commands, nor lines inside raw
    HTML opened in a paragraph (`Looks good <!--`, `<span title="`, `<?`) that ends before the
    paragraph does. Indented code is not treated as code.

    Several commands in one comment are all returned (the bot reads the first MAX_COMMANDS:
    parse_comment); it runs them one after another in this order, each on its own: a refused
    or invalid command is answered and does not stop the ones after it. Never raises: a
    malformed line becomes a command with `problems`.
    """
    return list(_parse(body, None).commands)


def _parse(body: str, limit: int | None) -> CommentCommands:
    blocks = _Blocks()
    commands: list[Command] = []
    # The lines of the open paragraph, each with its command if it has one: inline raw HTML
    # (`Looks good <!--`) hides the lines up to its end, but only if it ends before the
    # paragraph does, so the paragraph's commands are kept back until then.
    paragraph: list[tuple[str, Command | None]] = []
    for lineno, line in enumerate(_LINE_END.split(body), start=1):
        plain = blocks.is_plain(line)
        if blocks.paragraph_text is None or blocks.new_paragraph:
            commands.extend(_shown(paragraph))
            paragraph = []
        command = None
        if plain:
            match = _COMMAND.match(line)
            if match:
                command = _command(match[1].lower(), line, lineno, line[match.end() :])
        if blocks.paragraph_text is not None:
            paragraph.append((blocks.paragraph_text, command))
        elif command is not None:
            commands.append(command)
    commands.extend(_shown(paragraph))
    if limit is None or len(commands) <= limit:
        return CommentCommands(tuple(commands))
    return CommentCommands(tuple(commands[:limit]), len(commands) - limit)


def _shown(paragraph: Sequence[tuple[str, Command | None]]) -> list[Command]:
    """The commands of a paragraph whose line does not start inside inline raw HTML."""
    texts = [text.lstrip(" ") for text, _ in paragraph]
    commands = [command for _, command in paragraph if command is not None]
    if not commands or not any("<" in text or "](" in text for text in texts):
        return commands
    spans = _inline_html("\n".join(texts))
    shown: list[Command] = []
    start = 0
    for text, (_, command) in zip(texts, paragraph, strict=True):
        if command is not None and not any(open_ < start < close for open_, close in spans):
            shown.append(command)
        start += len(text) + 1
    return shown


def _inline_html(text: str) -> list[tuple[int, int]]:
    """Where the raw HTML of a paragraph's inline text starts and ends, as cmark-gfm reads it.

    Read left to right as GitHub does: a backslash escapes the next punctuation character, a run
    of backticks opens a code span closed by the next run of the same length (else it is text),
    a `<` starts an autolink or raw HTML if one follows (`_html_end`), else it is text, and a
    `]` after an open `[` or `![` followed by `(`, a destination and an optional title makes an
    inline link whose destination and title are not shown (`_link_tail_end`).
    """
    runs: dict[int, list[int]] = {}
    for run in _BACKTICKS.finditer(text):
        runs.setdefault(len(run[0]), []).append(run.start())
    spans: list[tuple[int, int]] = []
    unclosed: set[str] = set()
    brackets: list[bool] = []  # the open `[` (False) and `![` (True), innermost last
    pos = 0
    while token := _INLINE_TOKEN.search(text, pos):
        pos = token.end()
        if token[0] in ("[", "!["):
            brackets.append(token[0] == "![")
        elif token[0] == "]":
            if not brackets:
                continue
            image = brackets.pop()
            end = _link_tail_end(text, pos + 1) if text.startswith("(", pos) else None
            if end is not None:
                # The destination and title are not shown: lines starting in them are hidden.
                spans.append((token.start(), end))
                pos = end
                if not image:  # a link holds no link: the `[` around it are text now
                    brackets = [b for b in brackets if b]
        elif token[0][0] == "`":
            starts = runs.get(len(token[0]), [])
            index = bisect.bisect_left(starts, pos)
            if index < len(starts):
                pos = starts[index] + len(token[0])
        elif token[0] == "<":
            end = _html_end(text, pos, unclosed)
            if end is not None:
                spans.append((token.start(), end))
                pos = end
    return spans


def _link_tail_end(text: str, pos: int) -> int | None:
    """Where an inline link whose `](` ends at `pos` ends (after its `)`), or None when what
    follows is no destination and optional title: then the brackets are text."""
    pos = _LINK_GAP.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty
    destination = _LINK_DESTINATION.match(text, pos)
    assert destination is not None  # the second form matches the empty string
    pos = destination.end()
    gap = _LINK_GAP.match(text, pos).end()  # type: ignore[union-attr]
    title = _LINK_TITLE.match(text, gap) if gap > pos or destination.end() == 0 else None
    if title is not None and gap > pos:
        pos = _LINK_GAP.match(text, title.end()).end()  # type: ignore[union-attr]
    else:
        pos = gap
    return pos + 1 if text.startswith(")", pos) else None


def _html_end(text: str, pos: int, unclosed: set[str]) -> int | None:
    """Where the autolink or raw HTML whose `<` ends at `pos` ends, or None if none starts there.

    As cmark-gfm: an autolink; a comment (`<!--` to the first `-->` not after `-`; `<!-->` and
    `<!--->` end at once); CDATA; a declaration (`<!` and capitals, then a space); a processing
    instruction (`<?` to `?>`, where a `?` and the character after it are read as a pair);
    an open or closing tag, whose attributes may span lines. A comment, CDATA, declaration or
    processing instruction that finds no end is text, and so is every later one of its kind in
    the paragraph (`unclosed`, updated here).
    """
    link = _AUTOLINK.match(text, pos)
    if link:  # one line: it hides none, but what it holds is not read as other syntax
        return link.end()
    if text.startswith("!--", pos):
        kind = "comment"
    elif text.startswith("![CDATA[", pos):
        kind = "cdata"
    elif text.startswith("!", pos):
        kind = "declaration"
    elif text.startswith("?", pos):
        kind = "instruction"
    else:
        tag = _TAG.match(text, pos)
        return tag.end() if tag else None
    if kind in unclosed:  # checked first, so that no kind is searched to the end twice
        return None
    if kind == "comment":
        end = _comment_end(text, pos + 3)
    elif kind == "cdata":
        end = _paired_end(text, pos + 8, "]]>")
    elif kind == "instruction":
        end = _paired_end(text, pos + 1, "?>")
    elif (declaration := _DECLARATION.match(text, pos)) is None:
        return None
    else:  # `[^>]*` stops at a `>` or at the end
        end = declaration.end() + 1 if declaration.end() < len(text) else None
    if end is None:
        unclosed.add(kind)
    return end


def _comment_end(text: str, pos: int) -> int | None:
    """Where the comment whose `<!--` ends at `pos` ends, or None if it does not."""
    for ending in (">", "->", "-->"):
        if text.startswith(ending, pos):
            return pos + len(ending)
    close = _COMMENT_CLOSE.search(text, pos)
    return close.end() if close else None


def _paired_end(text: str, pos: int, ending: str) -> int | None:
    """Where `ending` (`?>`, `]]>`) closes what starts at `pos`, read as cmark-gfm's scanner
    reads it: its first character and the next (or, for `]]>`, the next two unless they end
    it) are taken together, so `??>` holds no `?>` and `]]]>` no `]]>`. None if it does not."""
    first = ending[0]
    while (found := text.find(first, pos)) >= 0:
        if text.startswith(ending, found):
            return found + len(ending)
        if len(ending) == 3 and text.startswith(first, found + 1):
            if found + 2 >= len(text):
                return None
            pos = found + 3
        else:
            pos = found + 2
    return None


def parse_retrain(args: Sequence[str], specs: Sequence[Parameter]) -> RetrainRequest | list[str]:
    """The parameters of `/retrain args` under `retrain.parameters`, or what is wrong with them.

    Each argument must be `name=value`, each name given once; the values are then checked with
    `validate_parameters`. With no arguments this is the Retrain button: the defaults.
    """
    problems: list[str] = []
    written: dict[str, list[str]] = {}
    for arg in args:
        key, equals, _ = arg.partition("=")
        if not equals:
            hint = _choice_hint(arg, specs)
            problems.append(f"{_brief(arg)} is not name=value; write each parameter as{hint}")
        elif not key:
            problems.append(f"{_brief(arg)} has no parameter name before the =")
        else:
            written.setdefault(key, []).append(arg)
    for key, args_of_key in written.items():
        if len(args_of_key) > 1:
            shown = ", ".join(_brief(arg) for arg in args_of_key)
            problems.append(f"{key} is given {len(args_of_key)} times ({shown}); give it once")
    if problems:
        return problems
    given = {key: args_of_key[0].partition("=")[2] for key, args_of_key in written.items()}
    try:
        return RetrainRequest(validate_parameters(specs, given))
    except ParameterError as exc:
        return list(exc.problems)


def help_text(parameters: Sequence[Parameter] = ()) -> str:
    """The `/help` reply: each command, what it does, who may use it; `/retrain`'s parameters."""
    rows = [f"| `{spec.usage}` | {spec.description} | {spec.who} |" for spec in COMMANDS.values()]
    if parameters:
        accepted = "\n".join(_describe_parameter(spec) for spec in parameters)
        retrain = (
            "`/retrain` accepts these parameters (`retrain.parameters` in `.github/mlgate.yml`):"
            f'\n\n{accepted}\n\nPut a value with spaces in quotes: `/retrain name="two words"`.'
        )
    else:
        retrain = (
            "`/retrain` accepts no parameters: `retrain.parameters` in `.github/mlgate.yml`"
            " declares none."
        )
    return "\n".join(
        [
            "### mlgate commands",
            "",
            "Write a command at the start of its own line in a comment on the pull request;"
            f" several command lines (at most {MAX_COMMANDS}) run in order. Lines in code blocks,"
            " quotes and HTML comments are ignored.",
            "",
            "| Command | What it does | Who may use it |",
            "|---|---|---|",
            *rows,
            "",
            retrain,
        ]
    )


def unknown_command_reply(name: str, parameters: Sequence[Parameter] = ()) -> str:
    """The reply to an unknown `/name`: what was not understood, a close match, then the help."""
    shown = name if len(name) <= _NAME_LIMIT else name[:_NAME_LIMIT] + "…"
    close: list[str] = []
    if len(name) <= _NAME_LIMIT:  # a longer word is close to no command; spare difflib
        close = difflib.get_close_matches(name.lower(), list(COMMANDS), n=1)
    suggestion = f": did you mean `/{close[0]}`?" if close else "."
    return f"Unknown command {code('/' + shown)}{suggestion}\n\n{help_text(parameters)}"


def refusal(command: Command, who: str, required: str, has: str | None = None) -> str:
    """The reply to a command its author may not run; says who may, and that nothing ran.

    `required` is a permission level (`write`: "needs write permission or more on this
    repository") or a phrase naming who may run it (`COMMANDS["deploy"].who`); `has` is the
    author's level, if known.
    """
    if required in PERMISSIONS:
        needs = f"needs {required} permission or more on this repository"
    else:
        needs = f"may only be run by {required}"
    known = f"; you have {has}" if has else ""
    login = who.lstrip("@")
    return (
        f"{quote_line(command.line)}\n\n"
        f"@{login}, `/{command.name}` {needs}{known}. Nothing was run."
    )


def stale_reply(written: Sequence[Command], who: str, head: str) -> str:
    """The reply to a comment written before the PR's head `head` (short sha) appeared: what
    it asked was about other code, so none of it ran."""
    quoted = "\n".join(quote_line(command.line) for command in written)
    login = who.lstrip("@")
    return (
        f"{quoted}\n\n@{login}, the PR changed after your comment; review {code(head)} and "
        "comment again. Nothing was run."
    )


def not_head_reply(command: Command, who: str, named: str, head: str) -> str:
    """The reply to `/evaluate <sha>` whose sha is not the head `head` (short sha)."""
    login = who.lstrip("@")
    return (
        f"{quote_line(command.line)}\n\n@{login}, {code(named)} is not the head of this pull "
        f"request; its head is {code(head)}: review it and comment {code('/evaluate ' + head)}."
        " Nothing was run."
    )


def old_button_reply(command: Command, who: str, clicked: str, head: str) -> str:
    """The reply to a button pressed on the check of `clicked`, no longer the head `head`
    (short shas)."""
    login = who.lstrip("@")
    return (
        f"{quote_line(command.line)}\n\n@{login}, that button is on {code(clicked)}, which is "
        f"no longer the head of this pull request; review {code(head)} and use the button on "
        "its check. Nothing was run."
    )


def problems_reply(command: Command, problems: Sequence[str]) -> str:
    """The reply to a command that cannot run as written: the line, its problems, where to look."""
    listing = "\n".join(problems)
    fence = "`" * max(3, _longest_run(listing, "`") + 1)
    return (
        f"{quote_line(command.line)}\n\n"
        f"`/{command.name}` was not run:\n\n{fence}text\n{listing}\n{fence}\n\n"
        "Write `/help` for the commands and what they accept."
    )


def _command(name: str, line: str, lineno: int, after: str) -> Command:
    text = after.strip()
    spec = COMMANDS.get(name)
    if spec is None:
        return Command(name, (), line, lineno, text)
    args: tuple[str, ...] = ()
    problems: list[str] = []
    if spec.arguments == "none" and text:
        problems.append(
            f"/{name} takes no arguments, but {_brief(text)} follows it;"
            f" write /{name} alone on its line"
        )
    elif spec.arguments == "sha":
        if _SHA_ARGUMENT.fullmatch(text):
            args = (text.lower(),)
        elif text:
            problems.append(
                f"/{name} takes a commit sha (7 to 40 hexadecimal digits) or nothing, but"
                f" {_brief(text)} follows it; write /{name} alone, or /{name} <sha> to approve"
                " that commit only"
            )
    elif spec.arguments == "candidate":
        matched = _CANDIDATE_ARGUMENT.fullmatch(text)
        if matched:
            args = (f"c{matched.group(1)}",)
        else:
            problems.append(
                f"/{name} takes one candidate of the leaderboard, c1, c2, …, but"
                f" {_brief(text) if text else 'nothing'} follows it; write e.g. /{name} c2"
            )
    elif spec.arguments == "text":
        if not text:
            problems.append(
                f"/{name} needs a reason on the same line, e.g."
                f" /{name} the accuracy drop is within noise, see #123"
            )
        elif len(text) > OVERRIDE_REASON_LIMIT:
            problems.append(
                f"the reason is {len(text)} characters long;"
                f" at most {OVERRIDE_REASON_LIMIT} are allowed"
            )
    elif spec.arguments == "words":
        if len(text) > RETRAIN_ARGUMENTS_LIMIT:
            problems.append(
                f"the arguments are {len(text)} characters long;"
                f" at most {RETRAIN_ARGUMENTS_LIMIT} are allowed"
            )
        else:
            try:
                args = tuple(shlex.split(text))
            except ValueError as exc:
                problems.append(_shlex_problem(str(exc)))
    return Command(name, args, line, lineno, text, tuple(problems))


def _shlex_problem(message: str) -> str:
    if "quotation" in message:
        return 'a quote is not closed; close it, e.g. name="two words"'
    if "escaped" in message:
        return "the line ends with a \\ that escapes nothing; remove it"
    return f"the arguments cannot be split into words ({message})"


def _choice_hint(word: str, specs: Sequence[Parameter]) -> str:
    owners = [spec.name for spec in specs if word in spec.choices]
    if len(owners) == 1:
        return f" name=value (did you mean {owners[0]}={word}?)"
    return f" name=value, e.g. {specs[0].name}=<value>" if specs else " name=value"


def _describe_parameter(spec: Parameter) -> str:
    if spec.required:
        extra = "required"
    elif spec.default is not None:
        extra = f"default {code(spec.default)}"
    else:
        extra = "optional"
    # Names, choices and defaults come from the repository's configuration.
    return f"- {code(spec.name)}: {escape(describe_accepted(spec), line_start=False)}; {extra}"


def _brief(text: str, limit: int = 60) -> str:
    """`text` in double quotes, shortened: problems repeat what the user wrote."""
    return '"' + (text if len(text) <= limit else text[:limit] + "…") + '"'


def quote_line(line: str) -> str:
    """A command line quoted back in a reply, as written.

    A code span inside the quote: an @mention in it does not notify anyone a second time.
    """
    text = line.strip()
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "…"
    return f"> {code(text)}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(run) for run in runs), default=0)


# A command name starts with a letter and ends at a space, a tab or the end of the line, so that
# paths (`/usr/bin`), prose (`/ some text`, `/evaluate.`) and a lone `/` are not commands.
_COMMAND = re.compile(r"[ \t]*/([A-Za-z][A-Za-z0-9_-]*)(?=[ \t]|\Z)")
# Only CommonMark's line endings: str.splitlines() would also split on \x0b, \x85, U+2028...
_LINE_END = re.compile(r"\r\n|\r|\n")

# Markdown block syntax, matched at a position of a line whose tabs are expanded (CommonMark
# reads tabs as stops of 4 columns for indentation and markers).
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,}) *\Z")
_LIST_MARKER = re.compile(r"( {0,3})([-+*]|(\d{1,9})[.)])( *)(.?)")
_SETEXT_UNDERLINE = re.compile(r" {0,3}(?:=+|-+) *\Z")
_ATX_HEADING = re.compile(r" {0,3}#{1,6}(?: |\Z)")
# The HTML blocks whose lines GitHub does not show as text (CommonMark's kinds 1 to 5): each
# named group's block ends at the line holding the `_HTML_BLOCK_END` of that name.
_HTML_BLOCK = re.compile(
    r" {0,3}<(?:(?P<raw>(?i:script|pre|style|textarea)(?=[ \t>]|\Z))|(?P<comment>!--)"
    r"|(?P<instruction>\?)|(?P<cdata>!\[CDATA\[)|(?P<declaration>![A-Z]))"
)
_HTML_BLOCK_END = {
    "raw": re.compile(r"</(?:script|pre|style|textarea)>", re.IGNORECASE),
    "comment": re.compile("-->"),
    "instruction": re.compile(r"\?>"),
    "cdata": re.compile(r"\]\]>"),
    "declaration": re.compile(">"),
}
_SPACES = re.compile(r" *")
# Inline syntax that decides where raw HTML inside a paragraph starts: a backslash escape, a run
# of backticks (a code span), `<`.
_INLINE_TOKEN = re.compile(r"\\[!-/:-@\[-`{-~]|`+|<|!?\[|\]")
# An inline link's destination and title after its `](`, as cmark-gfm's scanners read them:
# optional spaces and at most one line ending between the parts; a destination in `<>` or a
# run without spaces or control characters whose parentheses balance; a title in "", '' or ()
# that may span lines.
_LINK_GAP = re.compile(r"[ \t]*(?:\r\n|\n|\r)?[ \t]*")
_LINK_DESTINATION = re.compile(
    r"<(?:[^<>\n\\ ]|\\.)*>|(?:[^\x00-\x20()\\]|\\.|\((?:[^\x00-\x20()\\]|\\.)*\))*"
)
_LINK_TITLE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\((?:[^()\\]|\\.)*\)', re.S)
_BACKTICKS = re.compile(r"`+")
_COMMENT_CLOSE = re.compile(r"(?<!-)-->")
# cmark-gfm's scanners (scanners.re), from after the `<`: autolinks (a URI, an email address),
# a declaration up to its `>`, an open or closing tag (`spacechar` includes line endings).
_AUTOLINK = re.compile(
    r"[A-Za-z][A-Za-z0-9.+-]{1,31}:[^\x00-\x20<>]*>"
    r"|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*>"
)
_DECLARATION = re.compile(r"![A-Z]+[ \t\n\v\f\r]+[^>]*")
_SP = r"[ \t\n\v\f\r]"
_TAG = re.compile(
    rf"[A-Za-z][A-Za-z0-9-]*(?:{_SP}+[A-Za-z_:][A-Za-z0-9_.:-]*"
    rf"(?:{_SP}*={_SP}*(?:[^ \t\n\v\f\r\"'=<>`]+|'[^']*'|\"[^\"]*\"))?)*{_SP}*/?>"
    rf"|/[A-Za-z][A-Za-z0-9-]*{_SP}*>"
)


@dataclass
class _Quote:
    """A `>` block quote."""


@dataclass
class _Item:
    indent: int  # columns of content indentation, relative to the enclosing container
    has_content: bool


@dataclass
class _Fence:
    char: str
    length: int


_Leaf = Literal["none", "paragraph", "indented", "fenced", "html"]


class _Blocks:
    """Just enough of CommonMark's block structure to tell quoted, code and hidden lines apart.

    It follows the spec's (and GitHub's cmark-gfm's) two phases per line: match the open
    containers (quotes, list items), start new ones, then place the rest in a leaf, with
    paragraph laziness. Indented code is tracked only because it cannot be continued lazily.
    """

    def __init__(self) -> None:
        self.containers: list[_Quote | _Item] = []
        self.leaf: _Leaf = "none"
        self.fence: _Fence | None = None
        self.html_end: re.Pattern[str] | None = None  # the end of the open HTML block
        # How many containers a blank line continues, kept so that a run of blank lines under
        # deep nesting costs no walk over the containers.
        self._blank_reach: int | None = None
        # The text of the last line fed, from where its paragraph content starts, if the line
        # belongs to a paragraph; whether that paragraph began on this line.
        self.paragraph_text: str | None = None
        self.new_paragraph = False

    def is_plain(self, raw: str) -> bool:
        """Feed one line; True if GitHub renders it as text outside code, quotes and comments."""
        line = raw.expandtabs(4)
        self.paragraph_text = None
        if not line.strip(" "):
            return self._blank()
        pos, matched = self._match_containers(line)
        all_matched = matched == len(self.containers)
        if all_matched and self.fence is not None:
            close = _FENCE_CLOSE.match(line, pos)
            if close and close[1][0] == self.fence.char and len(close[1]) >= self.fence.length:
                self._set_leaf("none")
            return False
        if all_matched and self.leaf == "html" and self.html_end is not None:
            if self.html_end.search(line, pos):
                self._set_leaf("none")
            return False

        pos, opened = self._open_containers(line, pos, matched, all_matched)
        indent = _indent(line, pos)
        if pos + indent == len(line):  # nothing after the markers (`>`, `-`)
            if not opened:
                self._close(matched)
            self._set_leaf("none")
            return False
        if all_matched and not opened and self.leaf == "paragraph":
            if _SETEXT_UNDERLINE.match(line, pos):
                self._set_leaf("none")  # the paragraph became a heading and is closed
                return False
        start = self._leaf_start(line, pos, indent)
        if not all_matched and not opened and start is None and self.leaf == "paragraph":
            # A lazy continuation line: GitHub renders it inside the open paragraph, so a line
            # right after a quoted paragraph is quoted too.
            self.paragraph_text, self.new_paragraph = line[pos:], False
            return not self._quoted()
        if not opened:
            self._close(matched)
        if start is not None:
            self._set_leaf(start[0])
            self.fence, self.html_end = start[1], start[2]
            return False  # a fence, HTML block, heading or rule never starts with `/`
        self.new_paragraph = self.leaf != "paragraph"
        if self.new_paragraph:
            self._set_leaf("indented" if indent >= 4 else "paragraph")
        if self.leaf == "paragraph":
            self.paragraph_text = line[pos:]
        return not self._quoted()

    def _blank(self) -> bool:
        if self._blank_reach is None:
            self._blank_reach = next(
                (
                    index
                    for index, container in enumerate(self.containers)
                    if isinstance(container, _Quote) or not container.has_content
                ),
                len(self.containers),
            )
        if self._blank_reach < len(self.containers):
            self._close(self._blank_reach)
        elif self.fence is None and self.leaf != "html":
            self.leaf = "none"
        return False

    def _quoted(self) -> bool:
        return any(isinstance(container, _Quote) for container in self.containers)

    def _match_containers(self, line: str) -> tuple[int, int]:
        pos = 0
        for matched, container in enumerate(self.containers):
            indent = _indent(line, pos)
            if pos + indent == len(line):
                # The rest is blank (after `>`): quotes end, list items go on unless they began
                # with a blank line (an item may begin with at most one).
                if isinstance(container, _Quote) or not container.has_content:
                    return pos, matched
            elif isinstance(container, _Quote):
                if indent > 3 or line[pos + indent] != ">":
                    return pos, matched
                pos += indent + 1
                if line.startswith(" ", pos):
                    pos += 1
            elif indent >= container.indent:
                pos += container.indent
                if not container.has_content:
                    container.has_content = True
                    self._blank_reach = None
            else:
                return pos, matched
        return pos, len(self.containers)

    def _open_containers(
        self, line: str, pos: int, matched: int, all_matched: bool
    ) -> tuple[int, bool]:
        opened = False
        rule: tuple[str, int] | None | Literal[False] = False  # computed when first needed
        while len(self.containers) < MAX_NESTING:
            indent = _indent(line, pos)
            if indent > 3 or pos + indent == len(line):
                break
            if line[pos + indent] == ">":
                self._open(matched, opened, _Quote())
                opened = True
                pos += indent + 1
                if line.startswith(" ", pos):
                    pos += 1
                continue
            item = _LIST_MARKER.match(line, pos)
            if item is None:
                break
            if rule is False:
                rule = _rule_tail(line)
            if _is_rule(line, pos + indent, rule):
                break
            spaces, empty = len(item[4]), not item[5]
            if spaces == 0 and not empty:
                break  # `-x`, `1.5`: text, not a list marker
            interrupts = all_matched and not opened and self.leaf == "paragraph"
            if interrupts and (empty or (item[3] is not None and int(item[3]) != 1)):
                break  # may not interrupt a paragraph, so it stays paragraph text
            width = len(item[1]) + len(item[2])
            # Content starts 1-4 columns after the marker; 5 or more means indented code.
            gap = 1 if empty or spaces > 4 else spaces
            self._open(matched, opened, _Item(width + gap, has_content=not empty))
            opened = True
            pos = min(pos + width + gap, len(line))
        return pos, opened

    def _open(self, matched: int, opened: bool, container: _Quote | _Item) -> None:
        if not opened:
            self._close(matched)
        self._set_leaf("none")
        self.containers.append(container)
        self._blank_reach = None

    @staticmethod
    def _leaf_start(
        line: str, pos: int, indent: int
    ) -> tuple[_Leaf, _Fence | None, re.Pattern[str] | None] | None:
        """The leaf a non-blank line starts when it cannot continue a paragraph (with its fence
        or the end of its HTML block), else None."""
        if indent > 3:
            return None
        fence = _FENCE_OPEN.match(line, pos)
        # A backtick fence's info string cannot hold a backtick (it would be inline code).
        if fence and not (fence[1][0] == "`" and "`" in fence[2]):
            return "fenced", _Fence(fence[1][0], len(fence[1])), None
        html = _HTML_BLOCK.match(line, pos)
        if html and html.lastgroup:
            # The end may be on the same line, from the `<` on: `<!-->` is a whole comment.
            end = _HTML_BLOCK_END[html.lastgroup]
            if end.search(line, pos + indent):
                return "none", None, None
            return "html", None, end
        if _ATX_HEADING.match(line, pos) or _is_rule(line, pos + indent, _rule_tail(line)):
            return "none", None, None
        return None

    def _close(self, matched: int) -> None:
        if matched < len(self.containers):
            del self.containers[matched:]
            self._set_leaf("none")
            self._blank_reach = None

    def _set_leaf(self, leaf: _Leaf) -> None:
        self.leaf = leaf
        self.fence = None


def _rule_tail(line: str) -> tuple[str, int] | None:
    """The character of a thematic break (`***`, `- - -`) that may end `line`, and where the run
    of that character and spaces at the end of the line starts."""
    body = line.rstrip(" ")
    if not body or body[-1] not in "-*_":
        return None
    return body[-1], len(body.rstrip(body[-1] + " "))


def _is_rule(line: str, start: int, tail: tuple[str, int] | None) -> bool:
    """Whether the line from `start` (after up to 3 spaces) is a thematic break.

    Computed from `_rule_tail`, once per line, rather than by a regex at each nesting level: a
    long `- - - ... x` line would otherwise be scanned once per level.
    """
    if tail is None or start < tail[1]:
        return False
    found = start - 1
    for _ in range(3):
        found = line.find(tail[0], found + 1)
        if found < 0:
            return False
    return True


def _indent(line: str, pos: int) -> int:
    spaces = _SPACES.match(line, pos)
    return spaces.end() - pos if spaces else 0
