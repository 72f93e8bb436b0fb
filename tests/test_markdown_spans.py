"""Code spans for repository text: no backtick run, newline or pipe can break out of them."""

from __future__ import annotations

import pytest

from bot.core.markdown_escape import code_span


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("accuracy", "`accuracy`"),
        ("a`b", "``a`b``"),
        ("a``b`", "``` a``b` ```"),
        ("`x", "`` `x ``"),
        ("  x  y ", "`x y`"),
        ("", "` `"),
        ("line\nbreak\r", "`line break`"),
        ("nul\x00tab\t", "`nul\ufffdtab`"),  # a control shows as U+FFFD, whitespace as a space
        ("@admin <b>[x](y)</b>", "`@admin <b>[x](y)</b>`"),
    ],
)
def test_code_span_cannot_be_closed_early(text: str, span: str) -> None:
    assert code_span(text) == span


def test_code_span_escapes_pipes_only_in_tables() -> None:
    assert code_span("a|b") == "`a|b`"
    assert code_span("a|b", table=True) == "`a\\|b`"


def test_code_span_clips_long_text() -> None:
    assert code_span("x" * 100, limit=10) == "`" + "x" * 9 + "…`"
