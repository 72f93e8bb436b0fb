"""The local runner: checkouts of one commit, process-group timeouts, capped and redacted logs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import logs
from bot.errors import (
    FetchError,
    RunEnvironmentError,
    RunnerError,
    SettingsError,
    UnsafeCheckoutPath,
)
from bot.runs.runner import (
    LogCapture,
    RunResult,
    allowed_secrets,
    checkout_path,
    fetch,
    fresh_home,
    home_path,
    remove_checkout,
    run,
    run_environment,
)
from bot.settings import SANDBOX_MODES

SHA = "0123456789abcdef0123456789abcdef01234567"
FAKE_TOKEN = "ghs_FakeInstallationToken0123456789abcd"
BOT_SECRETS = {
    "GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\ncanary-private-key\n-----END",
    "GITHUB_WEBHOOK_SECRET": "canary-webhook-secret",
    "REDIS_URL": "redis://:canary-redis-password@localhost:6379/0",
    "SEMAPHORE_API_TOKEN": "canary-semaphore-token",
    "SEMAPHORE_WEBHOOK_SECRET": "canary-semaphore-webhook",
}


def _git(cwd: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Origin:
    url: str
    first: str
    second: str


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """A bare repository reached over file://, with two commits on main."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "params.yaml").write_text("epochs: 1\n")
    (work / "old.txt").write_text("only in the first commit\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "first")
    first = _git(work, "rev-parse", "HEAD")
    (work / "params.yaml").write_text("epochs: 2\n")
    _git(work, "rm", "-q", "old.txt")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "second")
    second = _git(work, "rev-parse", "HEAD")
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "origin.git"))
    return Origin(f"file://{tmp_path / 'origin.git'}", first, second)


def _env(tmp_path: Path, **params: str) -> dict[str, str]:
    return run_environment(
        params=params,
        run_id="run-1",
        repo="octo/model",
        pr=7,
        sha=SHA,
        allowed_secrets={},
        home=tmp_path,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Where PID 1 does not reap orphans (some containers), a killed process stays a zombie.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _dead_soon(pid: int) -> bool:
    until = time.monotonic() + 3
    while _alive(pid):
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


def _marker() -> str:
    """A `sleep` argument no other process has: it finds the process whatever its PID
    namespace (a PID the sandbox prints means nothing outside it)."""
    return f"60.{uuid.uuid4().int % 10**9:09d}"


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in argv and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _gone_soon(marker: str) -> bool:
    until = time.monotonic() + 3
    while _with_marker(marker):
        if time.monotonic() > until:
            return False
        time.sleep(0.02)
    return True


def _run_python(
    tmp_path: Path, code: str, *, log_limit: int = 1_000_000, secrets: tuple[str, ...] = ()
) -> RunResult:
    return run(
        [sys.executable, "-c", code],
        tmp_path,
        env=_env(tmp_path),
        timeout=10,
        log_limit=log_limit,
        secrets=secrets,
    )


# -- checkout paths -------------------------------------------------------------------------


def test_checkout_path_is_one_directory_per_run_under_its_repo_and_pr(tmp_path: Path) -> None:
    path = checkout_path(tmp_path, "Octo/Model.v2", 12, SHA, run_id="run-1")
    assert path == tmp_path.resolve() / "checkouts" / "octo" / "model.v2" / "pr-12" / "run-1"
    assert checkout_path(tmp_path, "octo/model.v2", 12, "f" * 40, run_id="run-1") == path
    assert checkout_path(tmp_path, "octo/model.v2", 13, SHA, run_id="run-1") != path
    first, second = (checkout_path(tmp_path, "octo/model.v2", 12, SHA) for _ in range(2))
    assert first.parent == second.parent == path.parent and first != second


def test_checkout_path_of_a_baseline_is_per_sha_and_per_run(tmp_path: Path) -> None:
    path = checkout_path(tmp_path, "octo/model", None, SHA)
    assert path.parent.name == f"sha-{SHA}"
    assert checkout_path(tmp_path, "octo/model", None, "f" * 40).parent != path.parent
    # A baseline run and deploy.run of one commit used to share, and delete, one tree.
    assert checkout_path(tmp_path, "octo/model", None, SHA) != path


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", ".hidden", "a.lock", "x" * 65, "ü"])
def test_checkout_path_refuses_run_ids_that_are_not_one_plain_name(
    tmp_path: Path, run_id: str
) -> None:
    with pytest.raises(UnsafeCheckoutPath, match="run id"):
        checkout_path(tmp_path, "octo/model", 1, SHA, run_id=run_id)


@pytest.mark.parametrize(
    "repo",
    [
        "../x",
        "a/../../b",
        "a/..",
        "../..",
        "./x",
        "/etc/passwd",
        "/abs/path",
        "a/b/c",
        "owner",
        "",
        "a b/c",
        "a/b\n",
        "a\\..\\b/c",
        "ow$ner/x",
        "owner/na~me",
        "owner/näme",
    ],
)
def test_checkout_path_refuses_names_that_are_not_owner_slash_name(
    tmp_path: Path, repo: str
) -> None:
    with pytest.raises(UnsafeCheckoutPath):
        checkout_path(tmp_path, repo, 1, SHA)


@pytest.mark.parametrize(("pr", "sha"), [(0, SHA), (-1, SHA), (None, "HEAD"), (None, "../x")])
def test_checkout_path_refuses_odd_pr_numbers_and_shas(
    tmp_path: Path, pr: int | None, sha: str
) -> None:
    with pytest.raises(UnsafeCheckoutPath):
        checkout_path(tmp_path, "octo/model", pr, sha)


def test_checkout_path_refuses_a_symlink_leading_out_of_the_data_dir(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (data / "checkouts").mkdir(parents=True)
    elsewhere.mkdir()
    (data / "checkouts" / "octo").symlink_to(elsewhere)
    with pytest.raises(UnsafeCheckoutPath, match="outside"):
        checkout_path(data, "octo/model", 1, SHA)


def test_fresh_home_is_empty_and_beside_the_checkout(tmp_path: Path) -> None:
    checkout = checkout_path(tmp_path, "octo/model", 3, SHA)
    home = fresh_home(checkout)
    (home / ".netrc").write_text("planted by an earlier run")
    assert fresh_home(checkout) == home == home_path(checkout)
    assert home.parent == checkout.parent and list(home.iterdir()) == []


# -- fetching -------------------------------------------------------------------------------


def test_fetch_ignores_the_workers_own_git_configuration(
    tmp_path: Path, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a command that once wrote the real ~/.gitconfig would leave for later fetches.
    home = tmp_path / "worker-home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f'[url "file://{tmp_path}/planted"]\n\tinsteadOf = {origin.url}\n'
        "[core]\n\thooksPath = /nonexistent\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    dest = checkout_path(tmp_path / "data", "octo/model", 1, origin.first)
    fetch(origin.url, origin.first, dest, None)
    assert (dest / "params.yaml").read_text() == "epochs: 1\n"
    assert origin.url in (dest / ".git" / "config").read_text()


def test_runs_of_one_commit_get_separate_checkouts(tmp_path: Path, origin: Origin) -> None:
    baseline = checkout_path(tmp_path / "data", "octo/model", None, origin.first)
    deploy = checkout_path(tmp_path / "data", "octo/model", None, origin.first)
    fetch(origin.url, origin.first, baseline, None)
    (baseline / "metrics.json").write_text('{"accuracy": 0.9}')
    fetch(origin.url, origin.first, deploy, None)
    assert (baseline / "metrics.json").read_text() == '{"accuracy": 0.9}'
    assert (deploy / "params.yaml").exists() and not (deploy / "metrics.json").exists()
    remove_checkout(baseline)
    assert not baseline.exists() and not home_path(baseline).exists()
    assert not baseline.with_name(baseline.name + ".lock").exists()
    assert (deploy / "params.yaml").exists()


def test_a_fetch_removes_what_finished_runs_left_but_not_a_run_in_progress(
    tmp_path: Path, origin: Origin
) -> None:
    data = tmp_path / "data"
    # A worker that died mid-run: its process, and so its lock, are gone; its files are not.
    crashed = checkout_path(data, "octo/model", 5, origin.first)
    code = (
        "import sys; from pathlib import Path; from bot.runs.runner import fetch, fresh_home\n"
        "dest = Path(sys.argv[1]); fetch(sys.argv[2], sys.argv[3], dest, None); fresh_home(dest)"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(crashed), origin.url, origin.first],
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert crashed.exists() and home_path(crashed).exists()
    running = checkout_path(data, "octo/model", 5, origin.first)
    fetch(origin.url, origin.first, running, None)
    # Left by an mlgate from before per-run checkouts: a checkout in the leaf, HOME beside it.
    leaf = running.parent
    (leaf / ".git").mkdir()
    (leaf / "params.yaml").write_text("old")
    leaf.with_name(leaf.name + ".home").mkdir()
    later = checkout_path(data, "octo/model", 5, origin.second)
    fetch(origin.url, origin.second, later, None)
    assert not crashed.exists() and not home_path(crashed).exists()
    assert not crashed.with_name(crashed.name + ".lock").exists()
    assert (running / "params.yaml").read_text() == "epochs: 1\n"
    assert (later / "params.yaml").read_text() == "epochs: 2\n"
    assert not (leaf / ".git").exists() and not (leaf / "params.yaml").exists()
    assert not leaf.with_name(leaf.name + ".home").exists()
    other_pr = checkout_path(data, "octo/model", 6, origin.first)
    fetch(origin.url, origin.first, other_pr, None)
    assert running.exists() and later.exists()  # another PR's fetch leaves these alone


def test_fetch_checks_out_exactly_the_requested_commit(tmp_path: Path, origin: Origin) -> None:
    dest = checkout_path(tmp_path / "data", "octo/model", 1, origin.first)
    fetch(origin.url, origin.first, dest, None)
    assert (dest / "params.yaml").read_text() == "epochs: 1\n"
    assert (dest / "old.txt").exists()
    assert _git(dest, "rev-parse", "HEAD") == origin.first

    fetch(origin.url, origin.second, dest, None)
    assert (dest / "params.yaml").read_text() == "epochs: 2\n"
    assert not (dest / "old.txt").exists()
    assert _git(dest, "rev-parse", "HEAD") == origin.second
    assert _git(dest, "rev-list", "--count", "HEAD") == "1"  # shallow: that commit only


def test_fetch_leaves_nothing_of_an_earlier_run(tmp_path: Path, origin: Origin) -> None:
    dest = tmp_path / "checkout"
    fetch(origin.url, origin.first, dest, None)
    (dest / "model.pkl").write_text("output of the last run")
    (dest / ".git" / "hooks").mkdir(exist_ok=True)
    (dest / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\necho stolen\n")
    locked = dest / "locked"
    (locked / "sub").mkdir(parents=True)
    locked.chmod(0o500)
    fetch(origin.url, origin.second, dest, None)
    assert sorted(p.name for p in dest.iterdir()) == [".git", "params.yaml"]
    assert not (dest / ".git" / "hooks").exists()


def test_fetch_never_writes_the_token_into_the_checkout(tmp_path: Path, origin: Origin) -> None:
    dest = tmp_path / "checkout"
    # Over file:// git ignores http.extraHeader, so the fetch succeeds with a fake token.
    fetch(origin.url, origin.second, dest, FAKE_TOKEN)
    basic = base64.b64encode(f"x-access-token:{FAKE_TOKEN}".encode())
    assert (dest / "params.yaml").read_text() == "epochs: 2\n"
    config = (dest / ".git" / "config").read_text()
    assert "extraheader" not in config.lower() and origin.url in config
    for path in dest.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert FAKE_TOKEN.encode() not in data and basic not in data, path


def test_fetch_error_says_which_command_failed_and_hides_the_token(
    tmp_path: Path, origin: Origin
) -> None:
    token = "canary-token-in-the-path"
    missing = f"file://{tmp_path / token}.git"
    with pytest.raises(FetchError) as failure:
        fetch(missing, origin.first, tmp_path / "checkout", token)
    assert failure.value.command.startswith("git fetch")
    assert failure.value.returncode != 0
    assert token not in str(failure.value) and logs.REDACTED in str(failure.value)


def test_fetch_of_an_unknown_commit_is_a_fetch_error(tmp_path: Path, origin: Origin) -> None:
    with pytest.raises(FetchError, match="not our ref|couldn't find"):
        fetch(origin.url, "f" * 40, tmp_path / "checkout", FAKE_TOKEN)


@pytest.mark.parametrize(
    ("url", "sha"),
    [
        ("https://x-access-token:secret@github.com/o/r.git", SHA),
        ("ext::sh -c touch% /tmp/pwned", SHA),
        ("--upload-pack=touch /tmp/pwned", SHA),
        ("https://github.com/o/r.git", "--upload-pack=touch"),
        ("https://github.com/o/r.git", SHA[:12]),
        ("https://github.com/o/r.git", "main"),
    ],
)
def test_fetch_refuses_credentials_in_urls_odd_schemes_and_partial_shas(
    tmp_path: Path, url: str, sha: str
) -> None:
    with pytest.raises(RunnerError):
        fetch(url, sha, tmp_path / "checkout", None)
    assert not (tmp_path / "checkout").exists()


# -- running commands -----------------------------------------------------------------------


def test_run_returns_the_exit_code_and_merged_output(tmp_path: Path) -> None:
    code = (
        "import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr); exit(3)"
    )
    result = _run_python(tmp_path, code)
    assert result.exit_code == 3 and not result.timed_out and not result.truncated
    assert "to stdout" in result.log and "to stderr" in result.log
    assert run(["true"], tmp_path, env=_env(tmp_path), timeout=5).exit_code == 0


def test_run_never_goes_through_a_shell(tmp_path: Path) -> None:
    result = run(["echo", "$HOME;", "touch", "pwned"], tmp_path, env=_env(tmp_path), timeout=5)
    assert result.log == "$HOME; touch pwned\n"
    assert not (tmp_path / "pwned").exists()


def test_a_missing_executable_is_an_error_result_not_a_crash(tmp_path: Path) -> None:
    result = run(["no-such-command-mlgate"], tmp_path, env=_env(tmp_path), timeout=5)
    assert result.exit_code == 127 and not result.timed_out
    assert "no-such-command-mlgate" in result.log and "not found" in result.log


@pytest.mark.parametrize("sandbox", SANDBOX_MODES)
def test_a_file_that_is_not_executable_is_126_and_a_signal_is_negative(
    tmp_path: Path, sandbox: str
) -> None:
    (tmp_path / "train.sh").write_text("#!/bin/sh\necho trained\n")
    result = run(["./train.sh"], tmp_path, env=_env(tmp_path), timeout=5, sandbox=sandbox)
    assert result.exit_code == 126 and "permission denied" in result.log
    (tmp_path / "train.sh").chmod(0o755)
    result = run(["./train.sh"], tmp_path, env=_env(tmp_path), timeout=5, sandbox=sandbox)
    assert result.exit_code == 0 and result.log == "trained\n"
    env = _env(tmp_path)
    killed = run(["sh", "-c", "kill -KILL $$"], tmp_path, env=env, timeout=5, sandbox=sandbox)
    assert killed.exit_code == -9 and not killed.timed_out
    assert run(["sh", "-c", "exit 7"], tmp_path, env=env, timeout=5, sandbox=sandbox).exit_code == 7


def test_a_missing_working_directory_is_an_error_result(tmp_path: Path) -> None:
    result = run(["true"], tmp_path / "gone", env=_env(tmp_path), timeout=5)
    assert result.exit_code == 126 and "does not exist" in result.log


@pytest.mark.parametrize("sandbox", SANDBOX_MODES)
def test_timeout_kills_the_whole_process_group(tmp_path: Path, sandbox: str) -> None:
    # `sh` is the configured command here; the grandchild `sleep` would outlive it.
    grandchild, child = _marker(), _marker()
    script = f"sleep {grandchild} & echo $! > grandchild.pid; sleep {child}"
    result = run(
        ["sh", "-c", script], tmp_path, env=_env(tmp_path), timeout=0.5, grace=5, sandbox=sandbox
    )
    assert result.timed_out and result.exit_code == -15
    assert result.duration < 4  # all went on SIGTERM, none waited for SIGKILL after the grace
    assert "timed out after 0.5 s" in result.log
    assert (tmp_path / "grandchild.pid").read_text().strip().isdigit()
    assert _gone_soon(grandchild) and _gone_soon(child)
    if sandbox == "none":
        assert _dead_soon(int((tmp_path / "grandchild.pid").read_text()))


@pytest.mark.parametrize("sandbox", SANDBOX_MODES)
def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path, sandbox: str) -> None:
    grandchild = _marker()
    script = f"trap '' TERM; sleep {grandchild} & echo $! > grandchild.pid; wait"
    result = run(
        ["sh", "-c", script], tmp_path, env=_env(tmp_path), timeout=0.3, grace=0.3, sandbox=sandbox
    )
    assert result.timed_out and result.exit_code == -9
    assert 0.6 <= result.duration < 3
    assert (tmp_path / "grandchild.pid").read_text().strip().isdigit()
    assert _gone_soon(grandchild)
    if sandbox == "none":
        assert _dead_soon(int((tmp_path / "grandchild.pid").read_text()))


@pytest.mark.parametrize("sandbox", SANDBOX_MODES)
def test_background_processes_do_not_outlive_a_finished_command(
    tmp_path: Path, sandbox: str
) -> None:
    # One background process keeps the output pipe open, the other does not.
    holder, quiet = _marker(), _marker()
    script = (
        f"sleep {holder} & echo $! > holder.pid; "
        f"sleep {quiet} >/dev/null 2>&1 & echo $! > quiet.pid"
    )
    result = run(["sh", "-c", script], tmp_path, env=_env(tmp_path), timeout=10, sandbox=sandbox)
    assert result.exit_code == 0 and not result.timed_out and result.duration < 3
    assert (tmp_path / "holder.pid").exists() and (tmp_path / "quiet.pid").exists()
    assert _gone_soon(holder) and _gone_soon(quiet)
    if sandbox == "none":
        assert _dead_soon(int((tmp_path / "holder.pid").read_text()))
        assert _dead_soon(int((tmp_path / "quiet.pid").read_text()))


def test_output_cap_keeps_head_and_tail_in_bounded_memory(tmp_path: Path) -> None:
    code = (
        "import sys; w = sys.stdout.buffer.write; w(b'FIRST LINE\\n')\n"
        "for _ in range(512): w(b'x' * 65535 + b'\\n')\n"
        "w(b'Traceback: the error at the end\\n')"
    )
    tracemalloc.start()
    try:
        result = _run_python(tmp_path, code, log_limit=64_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0 and result.truncated
    assert result.log.startswith("FIRST LINE\n")
    assert result.log.endswith("Traceback: the error at the end\n")
    assert "bytes of output cut by mlgate" in result.log
    assert len(result.log.encode()) <= 64_000
    assert peak < 2_000_000  # 32 MiB of output went through


def test_log_capture_keeps_everything_under_the_limit_and_counts_what_it_cut() -> None:
    whole = LogCapture(2048)
    whole.feed(b"a" * 1000)
    whole.feed(b"b" * 700)
    assert not whole.truncated and whole.text() == "a" * 1000 + "b" * 700
    capture = LogCapture(2048)
    for chunk in (b"a" * 1000, b"b" * 700, b"c" * 10_000):
        capture.feed(chunk)
    # Budget 2048 - 256 reserved: a quarter for the head, the rest for the tail.
    assert capture.truncated and capture.total == 11_700
    marker = "[... 9,908 bytes of output cut by mlgate ...]"
    assert capture.text() == "a" * 448 + "\n" + marker + "\n" + "c" * 1344
    with pytest.raises(ValueError):
        LogCapture(100)


def test_a_secret_printed_by_the_command_is_redacted_even_split_across_reads(
    tmp_path: Path,
) -> None:
    canary = "canary-allowed-secret-0f9a"
    code = (
        "import sys, time\n"
        f"s = {canary!r}\n"
        "print('whole:', s, flush=True); time.sleep(0.2)\n"
        "print('split:', s[:10], end='', flush=True); time.sleep(0.2)\n"
        "print(s[10:], flush=True)"
    )
    result = _run_python(tmp_path, code, secrets=(canary,))
    assert canary not in result.log and canary[:10] not in result.log
    assert result.log == f"whole: {logs.REDACTED}\nsplit: {logs.REDACTED}\n"


def test_registered_secrets_and_token_shapes_are_redacted(tmp_path: Path) -> None:
    registered = "canary-registered-secret-77e1"
    logs.register_secret(registered)
    code = f"print({registered!r}); print({FAKE_TOKEN!r})"
    result = _run_python(tmp_path, code)
    assert registered not in result.log and FAKE_TOKEN not in result.log
    assert result.log.count(logs.REDACTED) == 2


def test_a_secret_split_by_the_cut_is_not_revealed() -> None:
    secret = "canary" + "s3cr3t" * 8
    capture = LogCapture(2048)
    # No line ends near the cut: it falls inside the secret on both sides.
    capture.feed(b"h" * 400 + secret.encode())
    capture.feed(b"m" * 5000)
    capture.feed(secret.encode() + b"t" * 1400)
    text = capture.text([secret])
    assert capture.truncated
    for size in range(8, len(secret)):
        assert secret[:size] not in text and secret[-size:] not in text


# -- the environment ------------------------------------------------------------------------


def test_run_environment_holds_only_the_documented_variables(tmp_path: Path) -> None:
    env = run_environment(
        params={"model": "xgboost", "epochs": "10"},
        run_id="run-42",
        repo="octo/model",
        pr=None,
        sha=SHA,
        allowed_secrets={"HF_TOKEN": "hf-value"},
        home=tmp_path / "home",
        path="/usr/bin:/bin",
    )
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "MLGATE_PARAM_MODEL": "xgboost",
        "MLGATE_PARAM_EPOCHS": "10",
        "MLGATE_RUN_ID": "run-42",
        "MLGATE_REPO": "octo/model",
        "MLGATE_PR": "",
        "MLGATE_SHA": SHA,
        "HF_TOKEN": "hf-value",
    }


@pytest.mark.parametrize(
    "params",
    [{"1st": "x"}, {"a-b": "x"}, {"a b": "x"}, {"": "x"}, {"x": "a\x00b"}, {"lr": "1", "LR": "2"}],
)
def test_parameters_that_cannot_be_environment_variables_are_refused(
    tmp_path: Path, params: dict[str, str]
) -> None:
    with pytest.raises(RunEnvironmentError):
        _env(tmp_path, **params)


def test_a_command_printing_its_environment_sees_no_bot_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in BOT_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_TOKEN", "canary-hf-token")
    allowed = allowed_secrets("HF_TOKEN", os.environ)
    env = run_environment(
        params={"epochs": "3"},
        run_id="run-1",
        repo="octo/model",
        pr=7,
        sha=SHA,
        allowed_secrets=allowed,
        home=tmp_path,
    )
    # Redaction would hide a leak from this test: pass no secrets and register none of these.
    printed = run(["env"], tmp_path, env=env, timeout=5).log
    seen = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    assert not set(BOT_SECRETS) & set(seen)
    for value in BOT_SECRETS.values():
        assert value.split("\n")[1 if "\n" in value else 0] not in printed
    assert seen["HF_TOKEN"] == "canary-hf-token" and seen["MLGATE_PARAM_EPOCHS"] == "3"
    assert seen["HOME"] == str(tmp_path) and seen["HOME"] != os.environ.get("HOME")


def test_untrusted_runs_see_no_operator_secrets(tmp_path: Path) -> None:
    printed = run(["env"], tmp_path, env=_env(tmp_path), timeout=5).log
    names = {line.split("=", 1)[0] for line in printed.splitlines()}
    assert names == {
        "PATH",
        "HOME",
        "LANG",
        "MLGATE_RUN_ID",
        "MLGATE_REPO",
        "MLGATE_PR",
        "MLGATE_SHA",
    }


def test_allowed_secrets_are_only_the_listed_variables_that_are_set() -> None:
    environ = {"HF_TOKEN": "a", "WANDB_API_KEY": "b", "GITHUB_PRIVATE_KEY": "c"}
    assert allowed_secrets(" HF_TOKEN , WANDB_API_KEY,,UNSET_ONE ", environ) == {
        "HF_TOKEN": "a",
        "WANDB_API_KEY": "b",
    }
    assert allowed_secrets("", environ) == {}


@pytest.mark.parametrize("names", ["HF-TOKEN", "1ABC", "PATH", "HOME", "MLGATE_PARAM_X", "a b"])
def test_allowed_secrets_refuses_odd_or_reserved_names(names: str) -> None:
    with pytest.raises(SettingsError, match="MLGATE_RUNNER_SECRETS"):
        allowed_secrets(names, {"PATH": "/bin"})
