"""The GitHub App client against the local GitHub emulator, over real HTTP."""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bot.emulator import GitHubEmulator
from bot.errors import (
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubRetriesExhausted,
    GitHubValidationFailed,
)
from bot.github.github_client import GitHubApp, GitHubClient
from bot.github.repo_files import RepoFiles
from bot.state import pacing
from bot.state.redis_conn import key

OPENAPI = Path(__file__).parent / "fixtures" / "github" / "openapi-subset.json"
METRICS = '{"accuracy": 0.91, "loss": 0.2}\n'
BETTER_METRICS = '{"accuracy": 0.93, "loss": 0.1}\n'
# Short backoff keeps the retry tests fast; the waits they prove are real sleeps.
BACKOFF = 0.05
_ids = itertools.count(100)


@dataclass
class World:
    """One test's corner of the shared emulator: its own branch, head sha and pull request."""

    emu: GitHubEmulator
    branch: str
    pr: int
    installation: int = 42
    other_installation: int = 43
    repo: str = "octo/ml"
    other_repo: str = "other/data"

    def path(self, rest: str) -> str:
        return f"/repos/{self.repo}{rest}"

    def pattern(self, rest: str) -> str:
        """A fault pattern matching exactly this repository's `rest`."""
        return "^" + re.escape(self.path(rest)) + "$"

    def count(self, method: str, rest: str) -> int:
        path = self.path(rest)
        return sum(1 for r in self.emu.requests if r.method == method and r.path == path)

    def token_posts(self) -> int:
        path = f"/app/installations/{self.installation}/access_tokens"
        return sum(1 for r in self.emu.requests if r.method == "POST" and r.path == path)


# Candidate for tests/conftest.py. Starting an emulator costs half a second (an RSA key and
# the OpenAPI schema), and every repository a few git commands, so this module shares one
# emulator and its repositories; each test gets its own pull request (faults target its
# number, check runs its head sha), and Redis is emptied per test.
@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubEmulator]:
    root = tmp_path_factory.mktemp("emulator")
    with GitHubEmulator(app_id="1", openapi_path=OPENAPI, root=root) as emu:
        emu.add_installation(World.installation, "octo")
        emu.add_installation(World.other_installation, "other")
        emu.create_repo(
            World.repo,
            installation_id=World.installation,
            files={"README.md": "# ml\n", "metrics.json": METRICS},
        )
        emu.create_repo(
            World.other_repo, installation_id=World.other_installation, files={"README.md": "#\n"}
        )
        emu.add_user("alice")
        emu.set_permission(World.repo, "alice", "write")
        yield emu


@pytest.fixture
def world(shared_emulator: GitHubEmulator) -> Iterator[World]:
    emu = shared_emulator
    branch = f"feature-{next(_ids)}"
    emu.repo(World.repo).commit(branch, {"metrics.json": BETTER_METRICS}, "better")
    pull = emu.open_pull_request(World.repo, head=branch, base="main", user="alice", title="t")
    emu.token_lifetime = 3600
    emu.latency = 0.0
    emu.clear_requests()
    yield World(emu, branch, int(pull["number"]))
    emu.latency = 0.0
    emu.token_lifetime = 3600


@pytest.fixture
def make_app(world: World, redis_conn: redis.Redis) -> Callable[..., GitHubApp]:
    def make(**options: Any) -> GitHubApp:
        options.setdefault("backoff_base", BACKOFF)
        return GitHubApp("1", world.emu.app_private_key_pem, world.emu.url, redis_conn, **options)

    return make


@pytest.fixture
def app(make_app: Callable[..., GitHubApp]) -> GitHubApp:
    return make_app()


@pytest.fixture
def client(app: GitHubApp, world: World) -> GitHubClient:
    return app.client(world.installation)


def head_sha(client: GitHubClient, world: World) -> str:
    return str(client.get_pull(world.repo, world.pr)["head"]["sha"])


# -- App identity ------------------------------------------------------------------------------


def test_jwt_is_rs256_from_the_app_backdated_a_minute_and_valid_under_ten_minutes(
    world: World, app: GitHubApp
) -> None:
    private_key = serialization.load_pem_private_key(
        world.emu.app_private_key_pem.encode(), password=None
    )
    assert isinstance(private_key, RSAPrivateKey)

    now = time.time()
    token = app.jwt()
    claims = jwt.decode(token, private_key.public_key(), algorithms=["RS256"])

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["iss"] == "1"
    assert now - 62 <= claims["iat"] <= now - 58
    assert claims["exp"] <= now + 600
    assert claims["exp"] - claims["iat"] <= 600


def test_installation_for_repo_asks_github_with_the_app_jwt(world: World, app: GitHubApp) -> None:
    assert app.installation_for_repo(world.repo) == world.installation
    assert app.installation_for_repo(world.other_repo) == world.other_installation
    assert {r.auth for r in world.emu.requests} == {"jwt"}
    with pytest.raises(GitHubNotFound):
        app.installation_for_repo("nobody/missing")


def test_requests_of_an_installation_use_its_token(world: World, client: GitHubClient) -> None:
    client.get_pull(world.repo, world.pr)

    [token_post] = [r for r in world.emu.requests if r.path.endswith("/access_tokens")]
    [pull_get] = [r for r in world.emu.requests if r.path == world.path(f"/pulls/{world.pr}")]
    assert (token_post.auth, token_post.status) == ("jwt", 201)
    assert (pull_get.auth, pull_get.status) == ("installation", 200)


def test_two_app_objects_share_one_installation_token_through_redis(
    world: World, make_app: Callable[..., GitHubApp]
) -> None:
    first, second = make_app(), make_app()

    token = first.installation_token(world.installation)

    assert second.installation_token(world.installation) == token
    assert first.installation_token(world.installation) == token
    assert world.token_posts() == 1


def test_concurrent_token_requests_from_threads_make_one_post(
    world: World, make_app: Callable[..., GitHubApp]
) -> None:
    world.emu.latency = 0.2  # keeps the first POST in flight while the others ask
    apps = [make_app() for _ in range(6)]
    start = threading.Barrier(len(apps))
    tokens: list[str] = []

    def ask(app: GitHubApp) -> None:
        start.wait()
        tokens.append(app.installation_token(world.installation))

    threads = [threading.Thread(target=ask, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 6 and len(set(tokens)) == 1
    assert world.token_posts() == 1


def test_token_is_fetched_again_when_it_nears_expiry(
    world: World, app: GitHubApp, redis_conn: redis.Redis
) -> None:
    # Cached until 5 minutes before expires_at: here for one to two seconds.
    world.emu.token_lifetime = 302
    first = app.installation_token(world.installation)
    assert app.installation_token(world.installation) == first
    assert world.token_posts() == 1

    deadline = time.monotonic() + 3
    while redis_conn.exists(key("token", world.installation)) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert app.installation_token(world.installation) != first
    assert world.token_posts() == 2


def test_a_token_living_less_than_the_refresh_margin_is_not_cached(
    world: World, app: GitHubApp
) -> None:
    world.emu.token_lifetime = 200

    app.installation_token(world.installation)
    app.installation_token(world.installation)

    assert world.token_posts() == 2


def test_a_refused_token_is_replaced_once_and_the_request_retried(
    world: World, client: GitHubClient
) -> None:
    client.get_pull(world.repo, world.pr)
    world.emu.inject_fault(
        "GET", world.pattern(f"/pulls/{world.pr}"), 401, body={"message": "Bad credentials"}
    )

    assert client.get_pull(world.repo, world.pr)["number"] == world.pr
    assert world.token_posts() == 2


# -- Pagination --------------------------------------------------------------------------------


def test_paginate_follows_link_headers_across_pages(world: World, client: GitHubClient) -> None:
    for n in range(5):
        client.create_comment(world.repo, world.pr, f"comment {n}")
    world.emu.clear_requests()

    comments = client.paginate(world.path(f"/issues/{world.pr}/comments"), {"per_page": 2})

    assert [c["body"] for c in comments] == [f"comment {n}" for n in range(5)]
    assert world.count("GET", f"/issues/{world.pr}/comments") == 3


def test_paginate_stops_at_max_items_without_fetching_further_pages(
    world: World, client: GitHubClient
) -> None:
    for n in range(5):
        client.create_comment(world.repo, world.pr, f"comment {n}")
    world.emu.clear_requests()

    items = list(
        client.paginate(world.path(f"/issues/{world.pr}/comments"), {"per_page": 2}, max_items=3)
    )

    assert [c["body"] for c in items] == ["comment 0", "comment 1", "comment 2"]
    assert world.count("GET", f"/issues/{world.pr}/comments") == 2


def test_check_runs_are_listed_from_their_wrapped_pages(world: World, client: GitHubClient) -> None:
    sha = head_sha(client, world)
    for name in ("mlgate/quality", "mlgate/deploy", "mlgate/config"):
        client.create_check_run(world.repo, name, sha, status="in_progress")
    world.emu.clear_requests()

    all_runs = list(
        client.paginate(
            world.path(f"/commits/{sha}/check-runs"), {"per_page": 2}, item_key="check_runs"
        )
    )
    quality = list(client.list_check_runs(world.repo, sha, check_name="mlgate/quality"))

    assert sorted(r["name"] for r in all_runs) == [
        "mlgate/config",
        "mlgate/deploy",
        "mlgate/quality",
    ]
    assert world.count("GET", f"/commits/{sha}/check-runs") == 3
    assert [r["name"] for r in quality] == ["mlgate/quality"]


def test_hook_deliveries_are_listed_and_redelivered_with_the_app_jwt(
    world: World, app: GitHubApp
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    world.emu.configure_webhook(f"http://127.0.0.1:{closed_port}/webhooks/github", "secret")
    guid = f"guid-{world.installation}"
    world.emu.send_webhook("ping", {"zen": "Keep it logically awesome."}, guid=guid)
    app_client = app.app_client()

    [failed] = [d for d in app_client.list_hook_deliveries(status="failure") if d["guid"] == guid]
    app_client.redeliver(failed["id"])

    attempts = [d for d in app_client.list_hook_deliveries() if d["guid"] == guid]
    assert [d["redelivery"] for d in attempts] == [True, False]


# -- Retries -----------------------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff_until_github_answers(
    world: World, client: GitHubClient
) -> None:
    client.get_pull(world.repo, world.pr)
    world.emu.clear_requests()
    world.emu.inject_fault("GET", world.pattern(f"/pulls/{world.pr}"), 502, times=2)

    started = time.monotonic()
    pull = client.get_pull(world.repo, world.pr)
    elapsed = time.monotonic() - started

    assert pull["number"] == world.pr
    assert [r.status for r in world.emu.requests] == [502, 502, 200]
    assert elapsed >= BACKOFF + 2 * BACKOFF


def test_server_errors_forever_raise_retries_exhausted_after_four_tries(
    world: World, client: GitHubClient
) -> None:
    client.get_pull(world.repo, world.pr)
    world.emu.clear_requests()
    world.emu.inject_fault("GET", world.pattern(f"/pulls/{world.pr}"), 503, times=4)

    with pytest.raises(GitHubRetriesExhausted) as raised:
        client.get_pull(world.repo, world.pr)

    assert world.count("GET", f"/pulls/{world.pr}") == 4
    assert raised.value.status == 503
    assert f"503 to GET {world.path('/pulls/1')}" in str(raised.value)
    assert "gave up after 4 tries" in str(raised.value)


def test_connection_errors_are_retried_then_raise_retries_exhausted(
    world: World, redis_conn: redis.Redis
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    app = GitHubApp(
        "1",
        world.emu.app_private_key_pem,
        f"http://127.0.0.1:{closed_port}",
        redis_conn,
        backoff_base=BACKOFF,
        sleep=sleep,
    )

    with pytest.raises(GitHubRetriesExhausted, match="ConnectionError.*gave up after 4 tries"):
        app.installation_for_repo(world.repo)

    assert waits == [BACKOFF, 2 * BACKOFF, 4 * BACKOFF]


def test_retry_after_is_waited_out_before_retrying(world: World, client: GitHubClient) -> None:
    client.get_pull(world.repo, world.pr)
    world.emu.inject_fault(
        "GET",
        world.pattern(f"/pulls/{world.pr}"),
        429,
        headers={"retry-after": "1"},
        body={"message": "You have exceeded a secondary rate limit."},
    )

    started = time.monotonic()
    pull = client.get_pull(world.repo, world.pr)

    assert time.monotonic() - started >= 1.0
    assert pull["number"] == world.pr


def test_retry_after_pauses_other_requests_of_the_same_installation_only(
    world: World, make_app: Callable[..., GitHubApp]
) -> None:
    limited = make_app().client(world.installation)
    same_installation = make_app().client(world.installation)
    other_installation = make_app().client(world.other_installation)
    limited.get_pull(world.repo, world.pr)
    other_installation.get_contents(world.other_repo, "README.md")
    world.emu.inject_fault(
        "GET",
        world.pattern(f"/pulls/{world.pr}"),
        403,
        headers={"retry-after": "1"},
        body={"message": "You have exceeded a secondary rate limit."},
    )
    worker = threading.Thread(target=limited.get_pull, args=(world.repo, world.pr))
    worker.start()
    deadline = time.monotonic() + 5
    while not any(r.status == 403 for r in world.emu.requests) and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    other_installation.get_contents(world.other_repo, "README.md")
    other_elapsed = time.monotonic() - started
    same_installation.get_contents(world.repo, "README.md")
    same_elapsed = time.monotonic() - started
    worker.join()

    assert other_elapsed < 0.5
    assert same_elapsed >= 0.8


def test_an_exhausted_rate_limit_is_waited_out_until_its_reset(
    world: World, client: GitHubClient
) -> None:
    client.get_pull(world.repo, world.pr)
    reset = int(time.time()) + 1
    world.emu.inject_fault(
        "GET",
        world.pattern(f"/pulls/{world.pr}"),
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        body={"message": f"API rate limit exceeded for installation ID {world.installation}."},
    )

    pull = client.get_pull(world.repo, world.pr)

    assert time.time() >= reset
    assert pull["number"] == world.pr
    assert [r.status for r in world.emu.requests][-2:] == [403, 200]


def test_a_rate_limit_longer_than_the_maximum_wait_raises_instead_of_blocking(
    world: World, make_app: Callable[..., GitHubApp]
) -> None:
    client = make_app(max_wait=5).client(world.installation)
    client.get_pull(world.repo, world.pr)
    world.emu.inject_fault(
        "GET", world.pattern(f"/pulls/{world.pr}"), 429, headers={"retry-after": "3600"}
    )

    started = time.monotonic()
    with pytest.raises(GitHubRateLimited) as raised:
        client.get_pull(world.repo, world.pr)
    with pytest.raises(GitHubRateLimited, match="paused"):
        client.get_contents(world.repo, "README.md")

    assert time.monotonic() - started < 1
    assert raised.value.retry_after == 3600
    assert "retry later" in str(raised.value)
    assert world.count("GET", "/contents/README.md") == 0


def test_a_forbidden_answer_without_rate_limit_headers_is_not_retried(
    world: World, client: GitHubClient
) -> None:
    client.get_pull(world.repo, world.pr)
    world.emu.clear_requests()
    world.emu.inject_fault(
        "GET",
        world.pattern(f"/pulls/{world.pr}"),
        403,
        body={"message": "Resource not accessible by integration"},
    )

    with pytest.raises(GitHubError, match="403 to GET .*: Resource not accessible by integration"):
        client.get_pull(world.repo, world.pr)

    assert world.count("GET", f"/pulls/{world.pr}") == 1


# -- Errors ------------------------------------------------------------------------------------


def test_a_missing_pull_request_raises_not_found(world: World, client: GitHubClient) -> None:
    with pytest.raises(GitHubNotFound) as raised:
        client.get_pull(world.repo, 999)

    assert raised.value.status == 404
    assert str(raised.value) == (
        f"GitHub answered 404 to GET {world.path('/pulls/999')}: {raised.value.message}"
    )
    assert raised.value.message.startswith("Not Found")


def test_an_invalid_check_run_raises_validation_failed_with_githubs_message(
    world: World, client: GitHubClient
) -> None:
    sha = head_sha(client, world)

    with pytest.raises(GitHubValidationFailed) as raised:
        client.create_check_run(world.repo, "mlgate/quality", sha, conclusion="great")

    assert raised.value.status == 422
    assert f"422 to POST {world.path('/check-runs')}: " in str(raised.value)
    assert "conclusion" in raised.value.message


def test_validation_errors_list_githubs_errors(world: World, client: GitHubClient) -> None:
    errors = [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]
    world.emu.inject_fault(
        "POST",
        world.pattern(f"/issues/{world.pr}/comments"),
        422,
        body={"message": "Validation Failed", "errors": errors},
    )

    with pytest.raises(GitHubValidationFailed) as raised:
        client.create_comment(world.repo, world.pr, "hello")

    assert raised.value.message == f"Validation Failed ({json.dumps(errors[0], sort_keys=True)})"


# -- Pacing ------------------------------------------------------------------------------------


def test_the_eleventh_mutating_request_of_a_burst_waits_about_a_second(
    world: World, make_app: Callable[..., GitHubApp]
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    client = make_app(sleep=sleep).client(world.installation)
    client.get_pull(world.repo, world.pr)

    started = time.monotonic()
    done: list[float] = []
    for n in range(11):
        client.create_comment(world.repo, world.pr, f"comment {n}")
        done.append(time.monotonic() - started)

    # The first ten went straight through; only the eleventh waited, until one second after
    # the first had taken its token.
    assert len(waits) == 1
    assert done[10] - done[9] >= waits[0] > 0
    assert done[10] >= 0.95
    assert len(world.emu.comments(world.repo, world.pr)) == 11


def test_reads_are_not_paced(
    world: World, make_app: Callable[..., GitHubApp], redis_conn: redis.Redis
) -> None:
    strict = pacing.TokenBucket(redis_conn, capacity=1, rate=1.0)
    client = make_app(bucket=strict).client(world.installation)
    client.get_pull(world.repo, world.pr)

    started = time.monotonic()
    for _ in range(4):
        client.get_contents(world.repo, "README.md")

    # Paced like writes, four requests after a one-request burst would take three seconds.
    assert time.monotonic() - started < 1.5


# -- Logging -----------------------------------------------------------------------------------


def test_every_exchange_is_logged_once_with_its_facts(
    world: World, app: GitHubApp, client: GitHubClient, caplog: pytest.LogCaptureFixture
) -> None:
    app.installation_token(world.installation)  # so that only the API call itself is logged
    caplog.set_level(logging.INFO, logger="bot.github.github_client")
    caplog.clear()  # another test may have set the root logger to INFO already

    client.get_pull(world.repo, world.pr)

    [record] = [r for r in caplog.records if r.name == "bot.github.github_client"]
    facts = record.__dict__
    assert facts["method"] == "GET"
    assert facts["path"] == world.path(f"/pulls/{world.pr}")
    assert facts["status"] == 200
    assert facts["installation_id"] == world.installation
    assert facts["duration_ms"] >= 0
    assert isinstance(facts["ratelimit_remaining"], int)


def test_the_installation_token_never_appears_in_logs_or_errors(
    world: World, app: GitHubApp, client: GitHubClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.get_pull(world.repo, world.pr)
    client.create_comment(world.repo, world.pr, "hello")
    world.emu.inject_fault("GET", world.pattern(f"/pulls/{world.pr}"), 502)
    client.get_pull(world.repo, world.pr)
    tokens = {app.installation_token(world.installation)}
    world.emu.inject_fault(
        "GET", world.pattern(f"/pulls/{world.pr}"), 401, body={"message": "Bad token"}
    )
    client.get_pull(world.repo, world.pr)
    tokens.add(app.installation_token(world.installation))
    messages: list[str] = []
    failing: list[Callable[[], object]] = [
        lambda: client.get_pull(world.repo, 999),
        lambda: client.create_check_run(world.repo, "x", "0" * 40, conclusion="great"),
    ]
    for call in failing:
        with pytest.raises(GitHubError) as raised:
            call()
        messages += [str(raised.value), repr(raised.value.args)]

    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert len(tokens) == 2
    for token in tokens:
        assert token not in logged
        assert all(token not in m for m in messages)


# -- Endpoints ---------------------------------------------------------------------------------


def test_get_contents_decodes_files_and_answers_none_for_missing_ones(
    world: World, client: GitHubClient
) -> None:
    assert client.get_contents(world.repo, "metrics.json") == METRICS.encode()
    assert (
        client.get_contents(world.repo, "metrics.json", ref=world.branch) == BETTER_METRICS.encode()
    )
    assert client.get_contents(world.repo, "missing.json") is None


def test_comments_reactions_and_permissions_round_trip(world: World, client: GitHubClient) -> None:
    created = client.create_comment(world.repo, world.pr, "first")
    client.update_comment(world.repo, created["id"], "edited")
    reaction = client.add_reaction(world.repo, created["id"], "eyes")
    permission = client.collaborator_permission(world.repo, "alice")

    assert [c["body"] for c in client.list_comments(world.repo, world.pr)] == ["edited"]
    assert reaction["content"] == "eyes"
    assert (permission["permission"], permission["role_name"]) == ("write", "write")


def test_pull_files_compare_statuses_and_deployments_round_trip(
    world: World, client: GitHubClient
) -> None:
    sha = head_sha(client, world)

    files = [f["filename"] for f in client.list_pull_files(world.repo, world.pr)]
    comparison = client.compare(world.repo, "main", world.branch)
    status = client.create_commit_status(
        world.repo, sha, "success", context="mlgate/quality", description="gates passed"
    )
    deployment = client.create_deployment(
        world.repo, sha, environment="production", auto_merge=False, required_contexts=[]
    )
    deployment_status = client.create_deployment_status(world.repo, deployment["id"], "success")

    assert files == ["metrics.json"]
    assert [f["filename"] for f in comparison["files"]] == ["metrics.json"]
    assert (status["state"], status["context"]) == ("success", "mlgate/quality")
    assert deployment["environment"] == "production"
    assert deployment_status["state"] == "success"


def test_check_runs_are_created_and_updated(world: World, client: GitHubClient) -> None:
    sha = head_sha(client, world)

    run = client.create_check_run(world.repo, "mlgate/quality", sha, status="in_progress")
    client.update_check_run(
        world.repo,
        run["id"],
        status="completed",
        conclusion="success",
        output={"title": "Gates passed", "summary": "accuracy 0.93"},
    )

    [stored] = client.list_check_runs(world.repo, sha)
    assert stored["conclusion"] == "success"
    assert stored["output"]["title"] == "Gates passed"


def test_get_contents_fetches_files_over_a_megabyte_raw(world: World, client: GitHubClient) -> None:
    # GitHub answers `encoding: none` with empty content for files of 1-100 MB.
    weights = bytes(range(256)) * 6000
    world.emu.repo(world.repo).commit(world.branch, {"model.bin": weights}, "weights")

    assert client.get_contents(world.repo, "model.bin", ref=world.branch) == weights
    assert world.count("GET", "/contents/model.bin") == 2


def test_the_client_refuses_to_send_its_token_to_another_host(
    world: World, client: GitHubClient
) -> None:
    with pytest.raises(ValueError, match="not under the GitHub API"):
        client.request("GET", "https://example.com/repos/octo/ml")

    assert world.emu.requests == []


def test_file_reads_at_a_full_sha_are_cached_and_reads_at_a_branch_are_not(
    world: World, client: GitHubClient, redis_conn: redis.Redis
) -> None:
    sha = head_sha(client, world)
    files = RepoFiles(client, redis_conn, world.repo)
    world.emu.clear_requests()

    for _ in range(2):
        assert files.read("metrics.json", sha) == BETTER_METRICS.encode()
        assert files.read("missing.json", sha) is None
        assert files.read("metrics.json", world.branch) == BETTER_METRICS.encode()

    # One read at the sha, two at the branch (it may move); absence is remembered too.
    assert world.count("GET", "/contents/metrics.json") == 3
    assert world.count("GET", "/contents/missing.json") == 1
