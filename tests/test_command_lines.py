"""Which lines of a comment are commands, checked against GitHub's own parser (cmark-gfm)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.core.commands import (
    MAX_NESTING,
    OVERRIDE_REASON_LIMIT,
    RETRAIN_ARGUMENTS_LIMIT,
    Command,
    parse,
    parse_retrain,
)

_LINE_END = re.compile(r"(\r\n|\r|\n)")
# A line parse() could take for a command, whatever its block: the name is group 1.
_CANDIDATE = re.compile(r"[ \t]*/([A-Za-z][A-Za-z0-9_-]*)(?=[ \t]|\Z)")
_MARKED = re.compile(r"/c(\d+)z(?![0-9A-Za-z_-])")


class _PlainText(HTMLParser):
    """The marked command names GitHub shows as text: outside quotes, fences and comments.

    Indented code counts as text, as parse() reads it (an indented `/evaluate` is more likely a
    typo than an example). A fence's opening line is not part of its code; indented code starts
    with its own first line, which tells the two apart in the HTML.
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = lines
        self.quotes = 0
        self.code: tuple[str, list[str]] | None = None  # (the opening line from its column, text)
        self.found: set[int] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "blockquote":
            self.quotes += 1
        elif tag == "pre":
            start = (dict(attrs)["data-sourcepos"] or "").partition("-")[0]
            line, column = (int(part) for part in start.split(":"))
            # Source positions count bytes, from 1.
            opening = self.lines[line - 1].encode()[column - 1 :].decode(errors="replace")
            self.code = (opening, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self.quotes -= 1
        elif tag == "pre" and self.code is not None:
            opening, parts = self.code
            self.code = None
            text = "".join(parts)
            first = text.split("\n")[0]
            indented = not opening.startswith(("`", "~")) or first.strip() == opening.strip()
            if indented and self.quotes == 0:
                self._find(text)

    def handle_data(self, data: str) -> None:
        if self.code is not None:
            self.code[1].append(data)
        elif self.quotes == 0:
            self._find(data)

    def _find(self, text: str) -> None:
        self.found.update(int(number) for number in _MARKED.findall(text))


def github_command_lines(body: str) -> list[int]:
    """The line numbers GitHub renders as text starting with a command.

    Each candidate line's name becomes `c<lineno>z` (a name changes no block structure), the body
    is rendered by cmark-gfm, and the names found in plain text are read back.
    """
    parts = _LINE_END.split(body)
    lines = parts[0::2]
    for index, line in enumerate(lines):
        match = _CANDIDATE.match(line)
        if match:
            lines[index] = f"{line[: match.start(1)]}c{index + 1}z{line[match.end(1) :]}"
    parts[0::2] = lines
    html = cmarkgfm.github_flavored_markdown_to_html(
        "".join(parts), options=Options.CMARK_OPT_SOURCEPOS
    )
    reader = _PlainText(lines)
    reader.feed(html)
    reader.close()
    return sorted(reader.found)


def lines_of_commands(body: str) -> list[int]:
    return [command.lineno for command in parse(body)]


# --- block structure, case by case (each also checked against cmark-gfm) -------------------------

CASES = [
    # A thematic break interrupts a paragraph, so it ends a quote the next line would continue.
    ("> quoted\n/evaluate", []),
    ("> quoted\n---\n/evaluate", [3]),
    ("> quoted\n***\n/evaluate", [3]),
    ("> quoted\n_ _ _\n/evaluate", [3]),
    ("> quoted\n- - -\n/evaluate", [3]),
    ("> quoted\n  * * *  \n/evaluate", [3]),
    # ... but `--`, `-- -x`, `***X` or `X X X` are not breaks: the quote's paragraph goes on.
    ("> quoted\n--\n/evaluate", []),
    ("> quoted\n-- -x\n/evaluate", []),
    ("> quoted\n***X\n/evaluate", []),
    ("> quoted\n***\x0c\n/evaluate", []),
    ("> quoted\nX X X\n/evaluate", []),
    # `* * *` is a break, not three nested empty items that the next line could continue.
    ("* * *  \n      > quoted\n/evaluate", [3]),
    # `===` cannot underline a lazy paragraph: it is text, and the quote goes on.
    ("> quoted\n===\n/evaluate", []),
    # A break ends a list item, and the quote inside it.
    ("- > quoted\n/evaluate", []),
    ("- > quoted\n* * *\n/evaluate", [3]),
    ("- > quoted\n---\n/evaluate", [3]),
    ("1. > quoted\n***\n/evaluate", [3]),
    # A break inside the quote ends its paragraph: no lazy line after it.
    ("> quoted\n> ---\n/evaluate", [3]),
    # Ordered lists may start at any number up to nine digits...
    ("2. > quoted\n/evaluate", []),
    ("0) > quoted\n/evaluate", []),
    ("123456789. > quoted\n/evaluate", []),
    ("1234567890. > quoted\n/evaluate", [2]),
    # ...but only one starting at 1 may interrupt a paragraph.
    ("text\n1. > quoted\n/evaluate", []),
    ("text\n2. > quoted\n/evaluate", [3]),
    ("text\n10) > quoted\n/evaluate", [3]),
    # A bullet item may interrupt a paragraph, an empty one may not; a lazy line is no paragraph
    # of its own, so there an empty item starts a list and ends the quote.
    ("text\n- > quoted\n/evaluate", []),
    ("text\n* > quoted\n/evaluate", []),
    ("text\n*\n> quoted\n/evaluate", []),
    ("text\n*\n/evaluate", [3]),
    ("> text\n*\n/evaluate", [3]),
    # An item ends at a line indented less than its content...
    ("- > quoted\n\n/evaluate", [3]),
    ("1.  > quoted\n\n    /evaluate", [3]),
    ("-   > quoted\n\n  /evaluate", [3]),
    # ...and holds a blank line, unless it began with one.
    ("- a\n\n  > b\n  /evaluate", []),
    ("-\n\n  > b\n/evaluate", []),
    ("-\n  > b\n\n/evaluate", [4]),
    # Content 5 columns after the marker is code: the item's content starts one column in.
    ("-     > code\n  > quoted\n  /evaluate", []),
    ("-     > code\n /evaluate", [2]),
    # A marker needs a space after it; `-x` and `1.5` are text.
    ("-> quoted\n/evaluate", [2]),
    ("1.> quoted\n/evaluate", [2]),
    # Quotes: up to three spaces before `>`, the space after it optional.
    ("   > quoted\n   /evaluate", []),
    ("    > code\n/evaluate", [2]),
    (">quoted\n>\n/evaluate", [3]),
    ("> > deep\n> /evaluate", []),
    ("> > deep\n>\n/evaluate", [3]),
    ("> a\n>\n> /evaluate\n\n/help", [5]),
    # Tabs are stops of four columns: after `1.` a tab is two, so four columns to `>` and a quote.
    (">\t/evaluate\n\n-\t/help\n\t/help", [4]),
    ("1.\t  > quoted\n/evaluate", []),
    ("\t> quoted\n/evaluate", [2]),
    ("  \t> quoted\n/evaluate", [2]),
    # Indented code is text to parse(), but not inside a quote, and it is never lazy.
    ("    /evaluate", [1]),
    (">     code\n/evaluate", [2]),
    ("> text\n    /evaluate", []),
    # Where a container's content starts decides what the rest of the line is: one space after
    # `>` belongs to the marker, 1-4 after a list marker do, and only then is indentation counted.
    ("> > a\n> > ===\n/evaluate", [3]),
    (">    quoted\n/evaluate", []),
    ("> a\n>\n>    b\n/evaluate", []),
    ("> quoted\n>     more\n/evaluate", []),
    ("> text\n>     ***\n/evaluate", []),
    ("> quoted\n    > ===\n/evaluate", []),
    ("-    a\n\n      > quoted\n/evaluate", []),
    ("-  a\n\n      > quoted\n/evaluate", []),
    ("  * * *\n        > quoted\n/evaluate", [3]),
    ("- - a\n\n      > quoted\n/evaluate", []),  # each item's indent counts from its parent
    ("> > ```\n> > /deploy\n/evaluate", [3]),
    # An item that began empty holds a blank line once it has content.
    ("-\n  ```\n\n  /deploy\n  ```\n/evaluate", [6]),
    # Fences and comments.
    ("```\n/deploy\n```\n/evaluate", [4]),
    ("~~~~\n/deploy\n~~~\n/deploy\n~~~~~\n/evaluate", [6]),
    ("```\n/deploy\n```x\n/deploy", []),
    ("  ```\n  /deploy\n   ```\n/evaluate", [4]),
    ("- ```\n  /deploy\n  ```\n  /evaluate", [4]),
    ("1.  ```\n    /deploy\n    ```\n    /evaluate", [4]),  # closed after the item's indent
    ("- ```\n\n  /deploy\n  ```\n/evaluate", [5]),  # a blank line in an item keeps its fence
    ("> ```\n   > code\n/evaluate", [3]),  # `>` after three spaces continues the quote
    ("> ```\n/evaluate", [2]),
    ("<!--\n/deploy\n-->\n/evaluate", [4]),
    ("<!-->\n/evaluate", [2]),
    ("<!--->\n/evaluate", [2]),
    ("   <!-- a\n/deploy --> b\n/evaluate", [3]),
    ("    <!--\n/evaluate", [2]),
    ("> <!--\n/evaluate\n-->", [2]),
    ("- <!--\n  /deploy\n  -->\n/evaluate", [4]),
    ("<!--\n\n/deploy\n-->\n/evaluate", [5]),
    # A comment opened inside a paragraph hides the lines up to its end, if it ends in the
    # paragraph; `<!-->` and `<!--->` end at once; a code span or a backslash keeps `<!--` text.
    ("Looks good <!--\n/deploy\n-->\n/evaluate", [4]),
    ("Looks good <!--\n/deploy -->", []),
    ("/evaluate <!--\n/deploy\n-->\n/help", [1, 4]),
    ("a <!-- x -- y\n/deploy\n-->", []),
    ("a <!--\n/deploy\n\n-->", [2]),
    ("a <!--\n/deploy\n# heading -->\n/evaluate", [2, 4]),
    ("a <!--\n/deploy\n---\n-->", [2]),
    ("a <!--\n/deploy\n-->\n===\n/evaluate", [5]),
    ("a <!-->\n/deploy\n-->", [2]),
    ("a <!--->\n/deploy\n-->", [2]),
    ("a <!---->\n/deploy", [2]),
    ("a <!-- x -\n/deploy\n--->", [2]),  # `-->` after `-` does not end a comment
    ("a <!-- x --->\n/deploy\n-->", []),
    ("a <!-- -- -->\n/deploy -->", [2]),
    ("a <!-- a -<!---->\n/deploy", [2]),  # after a `<!--` without end, none is a comment
    ("a <!-- x\n\nb <!-- y\n/deploy -->", []),  # ... in the same paragraph only
    ("a `<!--`\n/deploy\n-->", [2]),
    ("a <!-- `\n/deploy\n--> `", []),
    ("``a\\``<!--``\n/deploy\n-->", []),
    ("a \\<!--\n/deploy\n-->", [2]),
    ("a \\\\<!--\n/deploy\n-->", []),
    ("a\n    <!--\n/deploy\n-->", []),
    ("    <!--\na\n/deploy\n-->", [3]),
    ("- a <!--\n  /deploy\n  -->\n/evaluate", [4]),
    ("- a <!-- x\n- b <!-- y\n/deploy -->", []),
    # Other inline raw HTML that spans lines hides them too: an open tag's attributes, a closing
    # tag, a processing instruction, a declaration, CDATA; each only if it ends.
    ('Looks good <span title="\n/deploy\n">\n/evaluate', [4]),
    ("a <span title='x\n/deploy '\n/>", []),
    ('a <span title="<!--">\n/deploy\n-->', [2]),  # the `<!--` is in the tag: no comment
    ("a <span\n/deploy\n/>b", [2]),  # `/deploy` is no attribute: not a tag
    ("a <span\n/deploy", [2]),
    ("a <a-b c:d='1' _e.f=g h=\n/deploy x>", []),
    ("a <a-b c:d='1' _e.f=g h=\n/deploy <x>", [2]),
    ('a <span title="x\n/deploy', [2]),
    ("a </span\n/deploy >", [2]),
    ("a </span\n>/deploy", []),
    ("a <?php\n/deploy\n?>\n/evaluate", [4]),
    ("a <? ??>\n/deploy ?>", []),  # `??>` is read as `??` then `>`
    ("a <? <??>\n/deploy", [2]),  # `<??>` ends at once; the first `<?` never does
    ("a <?\n/deploy", [2]),
    ("a <![CDATA[\n/deploy\n]]>", []),
    ("a <![CDATA[ ]]]>\n/deploy ]]>", []),
    ("a <![CDATA[\n/deploy", [2]),
    ("a <!DOCTYPE x\n/deploy\nz>", []),
    ("a <!DOCTYPE x\n/deploy\n>", [2]),  # a `>` line starts a quote: no end
    ("a <!doctype x\n/deploy\n>", [2]),  # capitals only
    ("a <!DOCTYPEx\n/deploy\n>", [2]),  # a space after the name
    ("a <!DOCTYPE x\n/deploy", [2]),
    ("a `<span`\n/deploy\n>", [2]),
    ("a \\<span title='\n/deploy '>", [2]),
    ("a <http://x`>\n/deploy `", [2]),  # an autolink holds the backtick
    ('a <http://x`>  <span title="`\n/deploy\n">', []),  # ...so it opens no code span
    ('a <a`b@x.org> <span title="`\n/deploy\n">', []),
    ("a <![CDATA[]]>\n/deploy ]]>", [2]),  # empty CDATA and instructions end at once
    ("a <??>\n/deploy ?>", [2]),
    ("a <![CDATA[]]\n/deploy ]]>", []),
    ("a <![CDATA[ ]]]]>\n/deploy ]]>", []),
    ("a <![CDATA[]x]]>\n/deploy ]]>", [2]),  # `]x` is a pair, `]]x` a triple
    ("a <![CDATA[]]x]]>\n/deploy ]]>", [2]),
    ("a <?x?y?>\n/deploy ?>", [2]),  # `?y` is a pair
    ("a <? ???>\n/deploy ?>", [2]),  # `??` then `?>`
    ('<span title="\n/deploy\n">', []),  # from the paragraph's first character
    ("a ]]> <![CDATA[\n/deploy ]]>", []),  # CDATA's end is looked for after its start
    ("a <!X y>\n/deploy", [2]),
    ('a <!X y><span title="\n/deploy\n">', []),  # read on right after the `>`
    ("a <!---->\n/deploy\n-->", [2]),
    ('a `x` <span title="`\n/deploy\n">', []),  # a closed code span is not read again
    ("a <!--\n/deploy <\n< -->", []),  # every line holds a `<`
    ("a <!--\n" + "b\n" * 7 + "/x -->", []),  # each line starts one past the last's end
    ("a <me@x.org`>\n/deploy `", [2]),  # no autolink; a code span is text
    # HTML blocks of a script, style, textarea or pre, an instruction, a declaration or CDATA
    # are not shown, up to the line that ends them; each may interrupt a paragraph.
    ("<script>\n/deploy\n</script>\n/evaluate", [4]),
    ("<STYLE x>\n\n/deploy\n</style> x\n/evaluate", [5]),
    ("<textarea\n/deploy\n</TEXTAREA>\n/evaluate", [4]),
    ("<pre>/deploy</pre>\n/evaluate", [2]),
    ("<scripts\n/deploy", [2]),
    ("text\n<?\n/deploy ?>\n/evaluate", [4]),
    ("<?x?>\n/deploy", [2]),
    ("<!DOCTYPE\n/deploy\n>\n/evaluate", [4]),
    ("<!doctype\n/deploy", [2]),
    ("- <![CDATA[\n  /deploy\n  ]]>\n/evaluate", [4]),
    ("> <?\n/evaluate", [2]),
    # Headings are closed at their line.
    ("> # heading\n/evaluate", [2]),
    ("> ###### heading\n/evaluate", [2]),
    ("> ####### not a heading\n/evaluate", []),
    ("> #not a heading\n/evaluate", []),
    ("> text\n> ---\n/evaluate", [3]),
    ("/evaluate\n===", [1]),
    # Blank lines end quotes and paragraphs, whatever spaces and tabs they hold.
    ("text\n\n2. > quoted\n/evaluate", []),
    ("text\n \t\n2. > quoted\n/evaluate", []),
    ("> quoted\n \t \n/evaluate", [3]),
    ("> quoted\n>  \n/evaluate", [3]),
    ("> > deep\n>   \n/evaluate", [3]),
    ("> a\n   >\n/evaluate", [3]),
    # Only spaces and tabs make a blank line: a form feed is text, and the quote goes on.
    ("> quoted\n\x0c\n/evaluate", []),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_block_structure_decides_which_lines_are_commands(body: str, expected: list[int]) -> None:
    assert github_command_lines(body) == expected  # the case says what GitHub shows
    assert lines_of_commands(body) == expected


def test_nesting_up_to_the_limit_is_followed() -> None:
    # Forty nested quotes and items, then a lazy line: still quoted.
    body = "- > " * 20 + "text\n/evaluate"
    assert github_command_lines(body) == []
    assert lines_of_commands(body) == []


def test_the_container_past_the_nesting_limit_is_text() -> None:
    # MAX_NESTING containers are opened; a `>` after them is text, so no quote holds the lazy line.
    assert lines_of_commands("- " * (MAX_NESTING - 1) + "> quoted\n/evaluate") == []
    assert lines_of_commands("- " * MAX_NESTING + "> quoted\n/evaluate") == [2]


# --- properties: any mix of block syntax, against cmark-gfm -------------------------------------

_FRAGMENTS = [
    "/retrain a=1",
    "/evaluate",
    " /help",
    "/override why",
    "```",
    "~~~",
    "````",
    "> ",
    ">",
    "  > ",
    "- ",
    "-",
    "1. ",
    "2) ",
    "10. ",
    "0. ",
    "* ",
    "+ ",
    "  - ",
    "  ",
    "   ",
    "    ",
    "     ",
    "\t",
    " \t",
    # A comment is a block only at the start of a line; one inside a paragraph is inline HTML.
    "\n<!--",
    "\n> <!--",
    "\n- <!--",
    "\n<!-->",
    "-->",
    "x-->",
    # Inside a paragraph: inline comments, and the code spans and escapes that keep `<!--` text.
    "a <!--",
    " <!-- ",
    "<!--->",
    "--->",
    "`",
    "``",
    "\\",
    "---",
    "- - -",
    "* * *",
    "_ _ _",
    "***",
    "===",
    "# ",
    "text",
    "\n",
    "\n",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
]
# Inline raw HTML, and the HTML blocks that hide their lines.
_HTML = [
    "<?",
    "?>",
    "??>",
    "<![CDATA[",
    "]]>",
    "]]]>",
    "<!X ",
    "<!x",
    "<span",
    ' title="',
    '"',
    "'",
    " a=b",
    "/>",
    "</span",
    "x>",
    "<http://a`>",
    "\n<?",
    "\n<script>",
    "</script>",
    "\n<!X",
    "\n<![CDATA[",
]
# Inline links, whose destination and title (which may span lines) GitHub does not show.
_LINKS = ["[a", "![a", "]", "](", "](x", '](x "', '")', "(", ")", ' "', '"', " '", " (", "<x>"]
_BODIES = st.lists(st.sampled_from(_FRAGMENTS + _HTML + _LINKS), max_size=40).map("".join)
# A line holding only a whole tag (`<span a=b>`) starts an HTML block that GitHub shows, and
# cmark-gfm, rendering safely, leaves out; parse() reads it as text, as GitHub shows it.
_SHOWN_HTML_BLOCK = re.compile(r"^[ >*+\-\d.)\t]*</?[A-Za-z][^<>]*>[ \t]*$", re.MULTILINE)


@settings(max_examples=500, deadline=None)
@given(_BODIES)
def test_the_commands_are_the_lines_github_shows_as_text(body: str) -> None:
    assume(not _SHOWN_HTML_BLOCK.search(_LINE_END.sub("\n", body)))
    assert lines_of_commands(body) == github_command_lines(body)


# --- exact limits ------------------------------------------------------------------------------


def test_retrain_arguments_may_be_exactly_at_the_limit_not_one_more() -> None:
    at_limit = "a=" + "x" * (RETRAIN_ARGUMENTS_LIMIT - 2)
    [command] = parse(f"/retrain {at_limit}")
    assert (command.args, command.problems) == ((at_limit,), ())
    [command] = parse(f"/retrain {at_limit}x")
    assert command.args == ()
    assert command.problems == (
        "the arguments are 10001 characters long; at most 10000 are allowed",
    )


def test_the_limits_count_the_text_after_stripping() -> None:
    padded = "   " + "x" * OVERRIDE_REASON_LIMIT + "   "
    assert parse(f"/override{padded}")[0].problems == ()
    padded = "  " + "a=" + "x" * (RETRAIN_ARGUMENTS_LIMIT - 2) + "\t "
    assert parse(f"/retrain{padded}")[0].problems == ()


def test_what_follows_a_bare_command_is_repeated_up_to_60_characters() -> None:
    sixty = "x" * 60
    tail = "follows it; write /deploy alone on its line"
    assert parse(f"/deploy {sixty}")[0].problems == (
        f'/deploy takes no arguments, but "{sixty}" {tail}',
    )
    assert parse(f"/deploy {sixty}y")[0].problems == (
        f'/deploy takes no arguments, but "{sixty}…" {tail}',
    )


def test_a_bare_word_without_declared_parameters_gets_the_plain_hint() -> None:
    assert parse_retrain(["fast"], ()) == [
        '"fast" is not name=value; write each parameter as name=value'
    ]


def test_an_unknown_command_keeps_its_line_and_number() -> None:
    [command] = parse("text\n  /shipit now  ")
    assert command == Command("shipit", (), "  /shipit now  ", 2, "now")
