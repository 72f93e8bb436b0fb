"""A command GitHub hides from the reader (an HTML comment opened mid-line) is not run."""

from __future__ import annotations

import time

import cmarkgfm

from bot.core.commands import parse


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


def test_many_unclosed_comments_and_backticks_are_read_in_linear_time() -> None:
    # Each `<!--` or backtick run could start a search to the end of the paragraph.
    body = "a" + " <!-- `` ``` `" * 20_000 + "\n/deploy"
    started = time.perf_counter()
    assert [command.name for command in parse(body)] == ["deploy"]
    assert time.perf_counter() - started < 1.0
