"""`mlgate demo` is the README's first command: it must keep working end to end."""

from __future__ import annotations

from bot import demo


def test_demo_shows_a_passing_then_failing_gate_in_one_edited_comment() -> None:
    lines: list[str] = []
    assert demo.run(lines.append) == 0
    text = "\n".join(lines)
    assert "mlgate/quality: success — Quality gate passed: 2 of 2 gates hold" in text
    assert "mlgate/quality: failure — Quality gate failed: 2 of 2 gates" in text
    assert "1,848 → 1,912" in text
    assert "One sticky comment (edited in place, 1 in all)" in text
    assert "evaluated 300 rows" in text  # the log tail of evaluate.py, which really ran
    # The fourth act: a data push to main retrains, and mlgate opens the PR.
    assert "6. dana pushes new data straight to main" in text
    assert "“Retrain on new data (" in text
    assert "label mlgate:retrain, committing metrics.json" in text
    assert "Audit: retrain by @dana on " in text  # the PR's comment, printed
