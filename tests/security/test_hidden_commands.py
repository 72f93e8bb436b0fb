"""A command GitHub hides from the reader (inline HTML opened mid-line, an HTML block) is not
run."""

from __future__ import annotations

import re

import cmarkgfm
import pytest

from bot.core.commands import parse
from tests.support import growth


def test_a_deploy_inside_a_comment_opened_mid_line_is_not_a_command() -> None:
    body = "Looks good <!--\n/deploy\n-->\n/evaluate"
    # GitHub shows only "Looks good" and "/evaluate": the /deploy line is inside the comment.
    shown = cmarkgfm.github_flavored_markdown_to_html(body)
    assert "deploy" not in shown and "/evaluate" in shown
    assert [(command.name, command.lineno) for command in parse(body)] == [("evaluate", 4)]


def test_a_comment_that_never_closes_hides_nothing() -> None:
    # Without its `-->` the `<!--` is text, and GitHub shows the /deploy under it.
    body = "Looks good <!--\n/deploy"
    assert "/deploy" in cmarkgfm.github_flavored_markdown_to_html(body)
    assert [command.name for command in parse(body)] == ["deploy"]


@pytest.mark.parametrize(
    "body",
    [
        'Looks good <span title="\n/deploy\n">',
        "Looks good <a href=\n/deploy x>",
        "Looks good <?php\n/deploy\n?>",
        "Looks good <![CDATA[\n/deploy\n]]>",
        "Looks good <!DOCTYPE html\n/deploy\nx>",
        "<script>\n/deploy\n</script>",
        "<style>\n\n/deploy\n</style>",
        "Looks good\n<?\n/deploy\n?>",
    ],
)
def test_a_deploy_inside_other_raw_html_is_not_a_command(body: str) -> None:
    # GitHub shows no "/deploy": it is inside an attribute, an instruction, CDATA, a declaration
    # or a script; only the /evaluate after it is a command.
    shown = cmarkgfm.github_flavored_markdown_to_html(body + "\n\n/evaluate")
    assert "deploy" not in shown and "/evaluate" in shown
    assert [command.name for command in parse(body + "\n\n/evaluate")] == ["evaluate"]


def test_many_unclosed_comments_and_backticks_are_read_in_linear_time() -> None:
    # Each `<!--`, `<?`, `<![CDATA[`, `<!X `, open tag or backtick run could start a search to
    # the end of the paragraph.
    def body(n: int) -> str:
        return "a" + " <!-- `` ``` ` <? <![CDATA[ <!X <a b='" * n + "\n/deploy"

    assert [command.name for command in parse(body(10_000))] == ["deploy"]
    assert growth(lambda n: parse(body(n)), 2_500) < 8  # linear: about 4; quadratic: 16

    def links(n: int) -> str:  # each `](` could start a search for its title's end
        return "a" + ' [a](b "' * n + " ![a](b '" * n + " [a](b (" * n + "\n/deploy"

    assert [command.name for command in parse(links(10_000))] == ["deploy"]
    assert growth(lambda n: parse(links(n)), 2_500) < 8


def _shown_lines(body: str) -> list[str]:
    """The lines GitHub shows of `body`: its HTML without tags (nor their attributes)."""
    html = cmarkgfm.github_flavored_markdown_to_html(body)
    return [line.strip() for line in re.sub(r"<[^>]*>", "\n", html).split("\n")]


@pytest.mark.parametrize(
    "body",
    [
        'Looks good [docs](https://x.test "\n/deploy\n")',  # a title spanning lines
        "Looks good [docs](\n/deploy\n)",  # a destination on a line of its own
        "Looks good ![plot](p.png '\n/deploy\n')",
        "Looks good [docs](x (\n/deploy\n))",
        'Looks good [docs](x(y)\n"\n/deploy\n")',
        'Looks good [docs](<x>\n"\n/deploy\n")',
        'Looks good [docs](x\t"\n/deploy\n"\t)',
        'Looks good [docs](x "a\\"\n/deploy\n")',
        'Looks good [[docs](x "\n/deploy\n")',
        '[see] [docs](x "\n/deploy\n")',
        '[a [docs](x "\n/deploy\n")](y)',
        '> Looks good [docs](x "\n> /deploy\n> ")',
        '- Looks good [docs](x "\n  /deploy\n  ")',
    ],
)
def test_a_deploy_inside_a_links_destination_or_title_is_not_a_command(body: str) -> None:
    assert "/deploy" not in _shown_lines(body + "\n\n/evaluate")
    assert [command.name for command in parse(body + "\n\n/evaluate")] == ["evaluate"]


@pytest.mark.parametrize(
    "body",
    [
        'Looks good ](x "\n/deploy\n")',  # no `[`: text
        'Looks good \\[docs](x "\n/deploy\n")',  # an escaped `[`
        'Looks good [docs] (x "\n/deploy\n")',  # a space before `(`
        'Looks good [docs](x "\n/deploy',  # the title never closes
        'Looks good [docs](x "\n/deploy\n" y)',  # more after the title
        "Looks good [docs](x y\n/deploy\n)",  # a destination with a space
        "Looks good [docs](<x y>\n/deploy\n)",
        "Looks good [docs](<x>\n/deploy\n)",  # /deploy is no title
        'Looks good [docs](x "t"\n/deploy\n)',
        "Looks good [docs](x (a(\n/deploy\n))",  # `(` inside a () title
        'Looks good [docs](x "\n\n/deploy\n")',  # a blank line ends the paragraph
        'Looks good `[docs](x "`\n/deploy\n")',  # the `[` is in a code span
        "Looks good [docs\n/deploy\n](x)",  # link text is shown
        'Looks good [docs](x "t")\n/deploy',
    ],
)
def test_brackets_that_make_no_link_hide_nothing(body: str) -> None:
    assert "/deploy" in _shown_lines(body)
    assert "deploy" in [command.name for command in parse(body)]
