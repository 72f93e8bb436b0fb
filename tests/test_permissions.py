from __future__ import annotations

import pytest

from bot.core.permissions import at_least, level


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"permission": "admin", "role_name": "admin"}, "admin"),
        ({"permission": "write", "role_name": "maintain"}, "maintain"),
        ({"permission": "read", "role_name": "triage"}, "triage"),
        ({"permission": "write", "role_name": "ml-reviewer"}, "write"),  # a custom role
        ({"permission": "none", "role_name": ""}, "none"),
        ({}, "none"),
    ],
)
def test_level_prefers_role_name_and_falls_back_to_permission(
    answer: dict[str, str], expected: str
) -> None:
    assert level(answer) == expected


def test_levels_are_ordered_read_triage_write_maintain_admin() -> None:
    assert at_least("maintain", "write")
    assert at_least("write", "write")
    assert not at_least("triage", "write")
    assert not at_least("write", "maintain")
    assert at_least("admin", "maintain")
