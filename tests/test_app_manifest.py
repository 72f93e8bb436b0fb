"""The App manifest mlgate registers with, and the `.env` it writes and reads back."""

from __future__ import annotations

import pytest

from bot.core import app_manifest
from bot.core.app_manifest import env_file, manifest, new_app_url, parse_env_file, quote_value

CONVERSION = {
    "id": 42,
    "slug": "mlgate-octo",
    "html_url": "https://github.com/apps/mlgate-octo",
    "webhook_secret": "s3cret with spaces",
    "client_id": "Iv1.abc",
    "client_secret": 'quote" and \\ backslash',
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
}


def test_the_manifest_points_github_at_this_mlgate() -> None:
    found = manifest("https://mlgate.example.com/", "http://127.0.0.1:5000/callback")
    assert found["hook_attributes"] == {
        "url": "https://mlgate.example.com/webhooks/github",
        "active": True,
    }
    assert found["redirect_url"] == "http://127.0.0.1:5000/callback"
    assert found["callback_urls"] == ["https://mlgate.example.com/auth/callback"]
    assert found["public"] is False
    assert set(found["default_events"]) == {
        "push", "pull_request", "issue_comment", "check_run", "check_suite"
    }  # fmt: skip


def test_members_read_is_asked_only_when_teams_approve_deploys() -> None:
    plain = manifest("https://m.example", "http://x/cb")["default_permissions"]
    teams = manifest("https://m.example", "http://x/cb", teams=True)["default_permissions"]
    assert "members" not in plain
    assert teams == plain | {"members": "read"}
    assert plain["checks"] == plain["pull_requests"] == plain["issues"] == "write"
    assert plain["contents"] == "read"


def test_the_new_app_page_of_a_user_or_an_organisation() -> None:
    assert new_app_url("https://github.com/", "a b") == (
        "https://github.com/settings/apps/new?state=a+b"
    )
    assert new_app_url("https://ghe.example", "s", "my org") == (
        "https://ghe.example/organizations/my%20org/settings/apps/new?state=s"
    )


def test_the_env_file_reads_back_to_the_values_github_gave() -> None:
    text = env_file(CONVERSION, "mlgate-octo.private-key.pem", "https://m.example/")
    assert text.startswith("# The GitHub App mlgate-octo (https://github.com/apps/mlgate-octo)\n")
    assert parse_env_file(text) == {
        "GITHUB_APP_ID": "42",
        "GITHUB_PRIVATE_KEY_PATH": "mlgate-octo.private-key.pem",
        "GITHUB_WEBHOOK_SECRET": "s3cret with spaces",
        "GITHUB_CLIENT_ID": "Iv1.abc",
        "GITHUB_CLIENT_SECRET": 'quote" and \\ backslash',
        "MLGATE_PUBLIC_URL": "https://m.example",
    }


@pytest.mark.parametrize(
    "line, expected",
    [
        ("A=1", {"A": "1"}),
        ("export A = 1 ", {"A": "1"}),
        ("A='single $x \\n'", {"A": "single $x \\n"}),
        ('A="two\\nlines"', {"A": "two\nlines"}),
        ("A=", {"A": ""}),
        ("# comment\n\nA=b=c", {"A": "b=c"}),
    ],
)
def test_env_file_lines(line: str, expected: dict[str, str]) -> None:
    assert parse_env_file(line) == expected


@pytest.mark.parametrize("line", ["just words", "=value", "A B=1"])
def test_a_line_that_is_no_assignment_names_its_number(line: str) -> None:
    with pytest.raises(ValueError, match="line 2: expected NAME=value"):
        parse_env_file("OK=1\n" + line)


@pytest.mark.parametrize("value", ["plain", "with space", 'q"uote', "back\\slash", "new\nline", ""])
def test_quoted_values_round_trip(value: str) -> None:
    assert app_manifest.parse_env_file(f"V={quote_value(value)}") == {"V": value}
