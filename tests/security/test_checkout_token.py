"""Checkouts are fetched with a token that reads one repository and can write nothing."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
import redis
import requests

from bot import sample
from bot.emulator import GitHubEmulator
from bot.github.github_client import GitHubApp
from bot.state import installation_tokens
from tests.support import Bot, comment_event, pull_request_event

REPO = "octo/model"
OTHER = "octo/other"


@pytest.fixture
def fetch_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that notes the configuration each git command is given (where the
    runner puts the token's Authorization header), then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    shims = tmp_path / "git-shim"
    shims.mkdir()
    log = tmp_path / "git-config.log"
    script = shims / "git"
    script.write_text(
        f'#!/bin/sh\nenv | grep "^GIT_CONFIG_VALUE_" >> "{log}"\nexec "{real}" "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    return log


def tokens_in(log: Path) -> set[str]:
    found = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        _, _, value = line.partition("=")
        if value.startswith("Authorization: Basic "):
            user, _, token = base64.b64decode(value.split()[-1]).decode().partition(":")
            assert user == "x-access-token"
            found.add(token)
    return found


def api(emulator: GitHubEmulator, method: str, path: str, token: str) -> int:
    answer = requests.request(
        method,
        emulator.url + path,
        headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json"},
        json={"body": "pwned"} if method == "POST" else None,
        timeout=10,
    )
    return answer.status_code


def assert_reads_only(emulator: GitHubEmulator, token: str, number: int) -> None:
    assert api(emulator, "GET", f"/repos/{REPO}/contents/README.md", token) == 200
    assert api(emulator, "POST", f"/repos/{REPO}/issues/{number}/comments", token) == 403
    assert api(emulator, "GET", f"/repos/{REPO}/pulls/{number}", token) == 403
    assert api(emulator, "GET", f"/repos/{OTHER}/contents/README.md", token) == 404
    assert api(emulator, "POST", f"/repos/{OTHER}/issues/1/comments", token) == 404


def setup_repos(emulator: GitHubEmulator, mlgate_yml: str, files: dict[str, str]) -> int:
    emulator.add_installation(42, "octo")
    base = sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run")
    emulator.create_repo(REPO, installation_id=42, files=base | {".github/mlgate.yml": mlgate_yml})
    emulator.create_repo(OTHER, installation_id=42, files={"README.md": "secret\n"})
    emulator.set_permission(REPO, "alice", "write")
    emulator.set_permission(REPO, "ada", "admin")
    emulator.create_issue(OTHER, "an issue", "alice")
    emulator.repo(REPO).commit("feature", files)
    return int(
        emulator.open_pull_request(REPO, head="feature", base="main", user="alice")["number"]
    )


def narrowed_requests(emulator: GitHubEmulator) -> list[object]:
    return [
        r.body
        for r in emulator.requests
        if r.path == "/app/installations/42/access_tokens" and r.body
    ]


def test_an_evaluations_checkout_is_fetched_with_a_token_that_reads_only_that_repository(
    bot: Bot, emulator: GitHubEmulator, fetch_tokens: Path
) -> None:
    better = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS, source="run")
    names = ("dvc.lock", "data/features.csv")
    number = setup_repos(
        emulator, sample.MLGATE_YML.format(source="run"), {n: better[n] for n in names}
    )
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    assert "evaluated 300 rows" in emulator.comments(REPO, number)[0]["body"]

    used = tokens_in(fetch_tokens)
    assert used  # the head, and the merge-base that stands in for a missing baseline
    for token in used:
        assert_reads_only(emulator, token, number)
    asked = narrowed_requests(emulator)
    assert asked and all(
        body == {"repositories": ["model"], "permissions": {"contents": "read"}} for body in asked
    )
    assert len(asked) == len(used)  # one token per fetch, none reused


def test_a_deploy_runs_checkout_is_fetched_with_the_narrowed_token_too(
    bot: Bot, emulator: GitHubEmulator, fetch_tokens: Path
) -> None:
    mlgate_yml = sample.MLGATE_YML.format(source="git") + (
        "deploy:\n  run: python3 deploy.py\n  approvers: {permission: maintain}\n  on: approval\n"
    )
    changed = sample.files(sample.BETTER_DATA, sample.BASE_PARAMS)
    names = ("data/images.dvc", "dvc.lock", "metrics.json")
    number = setup_repos(
        emulator, mlgate_yml, {n: changed[n] for n in names} | {"deploy.py": "print('ok')\n"}
    )
    bot.deliver("pull_request", pull_request_event(emulator, REPO, number, "opened"))
    bot.deliver("issue_comment", comment_event(emulator, REPO, number, "/deploy", "ada"))
    [deployment] = emulator.deployments(REPO)
    assert emulator.deployment_statuses(deployment["id"])[-1]["state"] == "success"
    [token] = tokens_in(fetch_tokens)
    assert_reads_only(emulator, token, number)


def test_a_checkout_token_is_made_for_one_repository_and_never_cached(
    emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    number = setup_repos(emulator, sample.MLGATE_YML.format(source="git"), {"x.txt": "x\n"})
    app = GitHubApp("1", emulator.app_private_key_pem, emulator.url, redis_conn)
    first = app.checkout_token(42, REPO)
    second = app.checkout_token(42, REPO)
    assert first != second
    assert installation_tokens.cached(redis_conn, 42) is None
    for token in (first, second):
        assert_reads_only(emulator, token, number)
    # The installation's own token, which the bot writes with, can do both.
    full = app.installation_token(42)
    assert api(emulator, "GET", f"/repos/{OTHER}/contents/README.md", full) == 200
    assert api(emulator, "POST", f"/repos/{REPO}/issues/{number}/comments", full) == 201
