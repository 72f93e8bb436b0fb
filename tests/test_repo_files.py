"""RepoFiles on the emulator: reads at a PR head known from its comparison, by blob, at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from bot.emulator import GitHubEmulator
from bot.errors import GitHubError
from bot.github.github_client import GitHubApp, GitHubClient
from bot.github.repo_files import COMPARE_FILES_LIMIT, RepoFiles, git_blob_sha

REPO = "octo/ml"
INSTALLATION = 42
BASE_FILES: dict[str, str | bytes | None] = {
    "dvc.yaml": "stages: {}\n",
    "params.yaml": "lr: 0.1\n",
    "metrics.json": '{"accuracy": 0.8}\n',
    "old-name.txt": "renamed, not changed\n",
    "gone.txt": "removed on the branch\n",
    "becomes-folder": "a file on main\n",
    "data/images.dvc": "outs: []\n",
}


@pytest.fixture
def gh(emulator: GitHubEmulator, redis_conn: redis.Redis) -> Iterator[GitHubClient]:
    emulator.add_installation(INSTALLATION, "octo")
    emulator.create_repo(REPO, installation_id=INSTALLATION, files=BASE_FILES)
    client = GitHubApp("1", emulator.app_private_key_pem, emulator.url, redis_conn).client(
        INSTALLATION
    )
    client.get_contents(REPO, "dvc.yaml")  # the installation token, before anything is counted
    yield client


def contents_reads(emulator: GitHubEmulator) -> list[tuple[str, str]]:
    """(path, ref) of every contents GET so far."""
    prefix = f"/repos/{REPO}/contents/"
    return [
        (r.path.removeprefix(prefix), r.query.get("ref", ""))
        for r in emulator.requests
        if r.method == "GET" and r.path.startswith(prefix)
    ]


def outcome(files: RepoFiles, path: str, ref: str) -> bytes | str | None:
    """The bytes read, or the name of the error the read raised."""
    try:
        return files.read(path, ref)
    except GitHubError as exc:
        return type(exc).__name__


def branch(emulator: GitHubEmulator, name: str, files: dict[str, str | bytes | None]) -> str:
    return emulator.repo(REPO).commit(name, files, f"work on {name}", author="alice")


def test_the_blob_sha_is_git_s() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_a_followed_head_reads_what_github_reads_there_with_calls_only_for_new_blobs(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    base = emulator.repo(REPO).head("main")
    head = branch(
        emulator,
        "feature",
        {
            "metrics.json": '{"accuracy": 0.9}\n',  # a new blob
            "data/images.dvc": BASE_FILES["params.yaml"],  # a blob the base has elsewhere
            "old-name.txt": None,
            "new-name.txt": BASE_FILES["old-name.txt"],  # a rename
            "gone.txt": None,
            "becomes-folder": None,
            "becomes-folder/inside.txt": "now a folder\n",
            "added.txt": "new\n",
        },
    )
    files = RepoFiles(gh, redis_conn, REPO)
    for path in BASE_FILES:
        files.read(path, base)
    emulator.clear_requests()

    files.follow(base, head)
    names = [*BASE_FILES, "new-name.txt", "added.txt", "becomes-folder/inside.txt", "nothing"]
    # Not plain paths, or names a changed path lives under: only GitHub can tell.
    odd = ["./dvc.yaml", "data/../dvc.yaml", "data", "data/", "becomes-folder"]
    followed = {path: outcome(files, path, head) for path in [*names, *odd]}

    calls = contents_reads(emulator)
    truth = RepoFiles(gh, redis_conn, REPO)
    assert followed == {path: outcome(truth, path, head) for path in followed}
    assert followed["params.yaml"] == b"lr: 0.1\n"
    assert followed["gone.txt"] is None and followed["old-name.txt"] is None
    assert followed["data"] == followed["becomes-folder"] == "GitHubError"
    # One comparison; the contents API at the head only for new blobs and odd names (the
    # HTTP client sends `./dvc.yaml` and `data/../dvc.yaml` as `dvc.yaml`; a failed read is
    # not remembered), and at the merge base for a name never read there. No call for files
    # the branch did not change, removed or renamed ones, or a blob the base holds under
    # another name.
    assert sum(1 for r in emulator.requests if "/compare/" in r.path) == 1
    at_head = [
        "metrics.json",
        "added.txt",
        "becomes-folder/inside.txt",
        *("becomes-folder", "becomes-folder"),
        *("dvc.yaml", "dvc.yaml", "data", "data/"),
    ]
    assert sorted(calls) == sorted([*((p, head) for p in at_head), ("nothing", base)])


def test_unchanged_files_are_read_at_the_merge_base_when_the_base_moved_on(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    fork_point = emulator.repo(REPO).head("main")
    head = branch(emulator, "feature", {"metrics.json": '{"accuracy": 0.9}\n'})
    base = emulator.repo(REPO).commit("main", {"params.yaml": "lr: 0.5\n"}, "faster")
    files = RepoFiles(gh, redis_conn, REPO)
    assert files.read("params.yaml", base) == b"lr: 0.5\n"
    files.follow(base, head)
    emulator.clear_requests()

    # The head never saw main's new params: it has the fork point's.
    assert files.read("params.yaml", head) == b"lr: 0.1\n"
    assert contents_reads(emulator) == [("params.yaml", fork_point)]


def test_a_comparison_that_may_leave_files_out_is_not_used(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    base = emulator.repo(REPO).head("main")
    many: dict[str, str | bytes | None] = {
        f"many/{i}.txt": f"{i}\n" for i in range(COMPARE_FILES_LIMIT)
    }
    head = branch(emulator, "feature", many)
    files = RepoFiles(gh, redis_conn, REPO)
    files.read("dvc.yaml", base)
    files.follow(base, head)
    emulator.clear_requests()

    assert files.read("dvc.yaml", head) == b"stages: {}\n"
    assert contents_reads(emulator) == [("dvc.yaml", head)]


def test_a_failed_comparison_leaves_reads_as_they_were(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    base = emulator.repo(REPO).head("main")
    head = branch(emulator, "feature", {"metrics.json": '{"accuracy": 0.9}\n'})
    emulator.inject_fault("GET", "/compare/", 404)
    files = RepoFiles(gh, redis_conn, REPO)
    files.read("dvc.yaml", base)
    files.follow(base, head)
    emulator.clear_requests()

    assert files.read("dvc.yaml", head) == b"stages: {}\n"
    assert contents_reads(emulator) == [("dvc.yaml", head)]


def test_prefetch_reads_at_once_and_reads_then_ask_nothing(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    base = emulator.repo(REPO).head("main")
    paths = ["dvc.yaml", "params.yaml", "metrics.json", "data/images.dvc"]
    files = RepoFiles(gh, redis_conn, REPO)
    emulator.latency = 0.5
    try:
        started = time.monotonic()
        files.prefetch([(path, base) for path in paths] + [("data", base)])
        elapsed = time.monotonic() - started
    finally:
        emulator.latency = 0.0
    # One after the other, five reads take 2.5 s at least; together about 0.5 s.
    assert elapsed < 1.5
    emulator.clear_requests()
    assert [files.read(path, base) for path in paths] == [BASE_FILES[p].encode() for p in paths]  # type: ignore[union-attr]
    assert contents_reads(emulator) == []
    # A read that failed ahead of time fails where it is made, as it would have.
    with pytest.raises(GitHubError, match="directory"):
        files.read("data", base)


def test_a_blob_read_once_is_known_in_a_later_process_by_its_sha(
    gh: GitHubClient, emulator: GitHubEmulator, redis_conn: redis.Redis
) -> None:
    base = emulator.repo(REPO).head("main")
    first = branch(emulator, "feature", {"metrics.json": '{"accuracy": 0.9}\n'})
    back = branch(emulator, "feature", {"metrics.json": BASE_FILES["metrics.json"]})
    again = branch(emulator, "feature", {"metrics.json": '{"accuracy": 0.9}\n'})
    reader = RepoFiles(gh, redis_conn, REPO)
    reader.follow(base, first)
    assert reader.read("metrics.json", first) == b'{"accuracy": 0.9}\n'
    emulator.clear_requests()

    # A new RepoFiles (the next job) knows the blob from Redis; a revert to the base's blob
    # too, though only the head was read before.
    later = RepoFiles(gh, redis_conn, REPO)
    later.follow(base, again)
    assert later.read("metrics.json", again) == b'{"accuracy": 0.9}\n'
    later.read("metrics.json", base)
    emulator.clear_requests()
    later.follow(base, back)
    assert later.read("metrics.json", back) == BASE_FILES["metrics.json"].encode()  # type: ignore[union-attr]
    assert contents_reads(emulator) == []
