"""Metrics upload tokens: `mlgate token create/revoke/list`, and only hashes in Redis."""

from __future__ import annotations

import re
import time

import pytest
import redis
from click.testing import CliRunner, Result

from bot.cli import main
from bot.embedded_redis import EmbeddedRedis
from bot.state import upload_tokens

REPO = "octo-org/models"


def mlgate(redis_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["token", *args], env={"REDIS_URL": redis_url})


def everything_in(conn: redis.Redis) -> str:
    """Every key and every value in Redis, as one text to search."""
    found: list[object] = []
    for name in conn.scan_iter(count=1000):
        kind = conn.type(name)
        found.append(name)
        if kind == b"string":
            found.append(conn.get(name))
        elif kind == b"hash":
            found.append(conn.hgetall(name))
        elif kind == b"set":
            found.append(conn.smembers(name))
        elif kind == b"zset":
            found.append(conn.zrange(name, 0, -1))
        elif kind == b"list":
            found.append(conn.lrange(name, 0, -1))
        else:
            raise AssertionError(f"unexpected {kind!r} at {name!r}")
    # repr() shows bytes of printable ASCII as they are, and tokens and hashes are ASCII.
    return repr(found)


def test_token_create_prints_the_token_once_and_stores_only_its_hash(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    result = mlgate(redis_url, "create", REPO)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert re.fullmatch(r"mlgate_[A-Za-z0-9_-]{43}", token)
    assert result.output.count(token) == 1
    assert "shown only this once" in result.stderr
    stored = everything_in(redis_conn)
    assert token not in stored
    assert token.split("_", 1)[1] not in stored
    assert upload_tokens.hash_token(token) in stored
    assert upload_tokens.authenticate(redis_conn, REPO, token)


def test_a_token_is_valid_for_its_repository_only(redis_conn: redis.Redis) -> None:
    token = upload_tokens.create(redis_conn, REPO, time.time())
    assert upload_tokens.authenticate(redis_conn, "Octo-Org/Models", token)
    assert not upload_tokens.authenticate(redis_conn, "octo-org/other", token)
    assert not upload_tokens.authenticate(redis_conn, REPO, token[:-1])


def test_token_revoke_refuses_every_token_of_the_repository(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    first = upload_tokens.create(redis_conn, REPO, time.time())
    second = upload_tokens.create(redis_conn, REPO, time.time())
    other = upload_tokens.create(redis_conn, "octo-org/other", time.time())
    result = mlgate(redis_url, "revoke", REPO)
    assert (result.exit_code, result.output) == (0, f"revoked 2 tokens of {REPO}\n")
    assert not upload_tokens.authenticate(redis_conn, REPO, first)
    assert not upload_tokens.authenticate(redis_conn, REPO, second)
    assert upload_tokens.authenticate(redis_conn, "octo-org/other", other)


def test_token_revoke_with_an_id_keeps_the_other_tokens_for_a_rotation(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    old = upload_tokens.create(redis_conn, REPO, time.time() - 60)
    new = upload_tokens.create(redis_conn, REPO, time.time())
    old_id = upload_tokens.hash_token(old)[: upload_tokens.TOKEN_ID_LENGTH]
    result = mlgate(redis_url, "revoke", REPO, "--id", old_id)
    assert (result.exit_code, result.output) == (0, f"revoked 1 token of {REPO}\n")
    assert not upload_tokens.authenticate(redis_conn, REPO, old)
    assert upload_tokens.authenticate(redis_conn, REPO, new)


def test_token_revoke_without_a_token_says_so_and_fails(redis_url: str) -> None:
    result = mlgate(redis_url, "revoke", REPO)
    assert result.exit_code == 1
    assert result.output == f"Error: {REPO} has no metrics upload token\n"


def test_token_list_shows_ids_and_times_never_tokens(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    token = upload_tokens.create(redis_conn, REPO, 1_800_000_000)
    other = upload_tokens.create(redis_conn, "octo-org/other", 1_800_000_000)
    result = mlgate(redis_url, "list")
    assert result.exit_code == 0, result.output
    token_id = upload_tokens.hash_token(token)[: upload_tokens.TOKEN_ID_LENGTH]
    other_id = upload_tokens.hash_token(other)[: upload_tokens.TOKEN_ID_LENGTH]
    assert result.output == (
        f"octo-org/models\t{token_id}\tcreated 2027-01-15T08:00:00Z\n"
        f"octo-org/other\t{other_id}\tcreated 2027-01-15T08:00:00Z\n"
    )
    assert mlgate(redis_url, "list", "octo-org/other").output.count("\n") == 1


@pytest.mark.parametrize("repo", ["models", "octo-org/models/extra", "octo_org/models", "octo/.."])
def test_token_create_refuses_what_is_not_owner_slash_name(redis_url: str, repo: str) -> None:
    result = mlgate(redis_url, "create", repo)
    assert result.exit_code == 2
    assert "expected owner/name" in result.output


def test_token_commands_need_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(main, ["token", "create", REPO])
    assert result.exit_code == 1
    assert "REDIS_URL is not set" in result.output


def test_an_unreachable_redis_is_one_line_without_the_url_and_prints_no_token() -> None:
    stopped = EmbeddedRedis().start()
    url = stopped.url.replace("redis://", "redis://:hunter2-password@")
    stopped.stop()
    result = CliRunner().invoke(main, ["token", "create", REPO], env={"REDIS_URL": url})
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach Redis at REDIS_URL: ConnectionError")
    assert result.output.count("\n") == 1
    assert "hunter2" not in result.output
    assert "mlgate_" not in result.output


def test_canonical_repo_accepts_github_names_only() -> None:
    assert upload_tokens.canonical_repo("Octo-Org/My.Model_v2") == "octo-org/my.model_v2"
    for bad in ("", "octo", "octo/", "/models", "a/b/c", "octo org/models", "o:x/models"):
        assert upload_tokens.canonical_repo(bad) is None
