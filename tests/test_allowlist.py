from __future__ import annotations

from bot.core.allowlist import repo_allowed


def test_no_patterns_allow_every_repository() -> None:
    assert repo_allowed("org/anything", [])


def test_globs_allow_and_negations_exclude() -> None:
    patterns = ["org/*", "!org/secret"]
    assert repo_allowed("org/models", patterns)
    assert not repo_allowed("org/secret", patterns)
    assert not repo_allowed("other/models", patterns)


def test_only_negations_allow_everything_else() -> None:
    assert repo_allowed("org/models", ["!org/secret"])
    assert not repo_allowed("org/secret", ["!org/secret"])


def test_names_compare_case_insensitively_as_github_does() -> None:
    assert repo_allowed("Org/Models", ["org/models"])
