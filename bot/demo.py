"""`mlgate demo`: the whole flow on a sample ML repository against the built-in GitHub emulator."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bot import logs, sample
from bot.core.report import parse_data
from bot.embedded_redis import EmbeddedRedis
from bot.emulator import GitHubEmulator
from bot.emulator.github_models import EmulatedRepo
from bot.errors import MlgateError
from bot.loopback import serve
from bot.runs.sandbox import readiness
from bot.settings import SANDBOX_NONE, sandbox_mode
from bot.web.app import create_app

log = logging.getLogger(__name__)

REPO = "acme/sample-model"
INSTALLATION = 7
AUTHOR = "alice"
ENGINEER = "dana"  # a data engineer who pushes new data straight to main
SECRET = "demo-webhook-secret"
WAIT_SECONDS = 60.0
OPENAPI = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "github" / "openapi-subset.json"
)

Echo = Callable[[str], None]


def _event(
    emulator: GitHubEmulator, action: str, number: int | None = None, sender: str = AUTHOR
) -> dict[str, Any]:
    """A webhook payload as GitHub sends it, built from the emulator's own objects."""
    data: dict[str, Any] = {
        "repository": emulator.repository(REPO),
        "installation": {"id": INSTALLATION},
        "sender": emulator.user_json(sender),
    }
    if number is not None:
        data |= {"action": action, "number": number}
        data["pull_request"] = emulator.pull_request(REPO, number)
    return data


@contextmanager
def _worker(env: dict[str, str], log_path: Path) -> Iterator[None]:
    """The real `mlgate worker` processes, their logs kept in a file."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=os.environ | env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_quality(emulator: GitHubEmulator, sha: str, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        runs = [r for r in emulator.check_runs(REPO, sha) if r["name"] == "mlgate/quality"]
        if runs and runs[-1]["status"] == "completed":
            return runs[-1]
        time.sleep(0.1)
    raise MlgateError(
        f"no completed mlgate/quality on {sha[:7]} after {WAIT_SECONDS:.0f} s; "
        f"the worker's log is in {log_path}"
    )


def _wait_for_retrain_pr(emulator: GitHubEmulator, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for item in emulator.issues(REPO):
            if "pull_request" in item:
                pull = emulator.pull_request(REPO, item["number"])
                if pull["head"]["ref"].startswith("mlgate/retrain-") and pull["labels"]:
                    return pull
        time.sleep(0.1)
    raise MlgateError(
        f"no retrain PR after {WAIT_SECONDS:.0f} s; the worker's log is in {log_path}"
    )


def _show(echo: Echo, emulator: GitHubEmulator, number: int, check: dict[str, Any]) -> None:
    comments = emulator.comments(REPO, number)
    echo(f"PR #{number} has {len(comments)} mlgate comment (id {comments[-1]['id']}):")
    echo("")
    for line in comments[-1]["body"].splitlines():
        echo(f"    {line}")
    echo("")
    output = check["output"]
    echo(f"mlgate/quality: {check['conclusion']} — {output['title']}")
    for annotation in check.get("annotations", []):
        echo(
            f"  annotation {annotation['path']}:{annotation['start_line']}: {annotation['message']}"
        )


def run(echo: Echo) -> int:
    """Run the demo, narrating with `echo`; returns the process exit code.

    The sample's evaluate.py runs in the sandbox, as every repository command does: without
    bubblewrap the demo runs nothing and says how to fix that (MLGATE_SANDBOX=none being the
    only way to run it unsandboxed, which is said and logged).
    """
    mode = sandbox_mode()
    notice = readiness(mode)
    if notice is not None:
        if mode != SANDBOX_NONE:
            echo(f"mlgate demo runs the sample repository's evaluate.py, and {notice}")
            return 1
        log.warning(notice)
        echo(notice)
    started = time.monotonic()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-demo-")))
        stack.enter_context(logs.to_file(work / "web.log"))
        redis_server = stack.enter_context(EmbeddedRedis())
        emulator = stack.enter_context(
            GitHubEmulator(
                app_id="1",
                openapi_path=OPENAPI if OPENAPI.exists() else None,
                root=work / "github",
            )
        )
        env = {
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "REDIS_URL": redis_server.url,
            "GITHUB_APP_ID": "1",
            "GITHUB_PRIVATE_KEY": emulator.app_private_key_pem,
            "GITHUB_API_URL": emulator.url,
            "MLGATE_DATA_DIR": str(work / "data"),
            "MLGATE_RETRY_DELAYS": "1,2",
        }
        echo(f"1. Embedded Redis, the GitHub emulator at {emulator.url}, web and worker")
        url = stack.enter_context(serve(create_app(env)))
        worker_log = work / "worker.log"
        stack.enter_context(_worker(env, worker_log))
        emulator.configure_webhook(f"{url}/webhooks/github", SECRET)

        # Contents: read & write: the retrain loop commits through the Git Data API.
        permissions = {**emulator.installation_permissions, "contents": "write"}
        emulator.add_installation(INSTALLATION, "acme", permissions)
        repo = emulator.create_repo(
            REPO,
            installation_id=INSTALLATION,
            files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS, source="run", retrain=True),
        )
        emulator.set_permission(REPO, AUTHOR, "write")
        echo(
            f"2. {REPO}: DVC data, dvc.lock, params.yaml, evaluate.py; gates and the retrain "
            "loop in .github/mlgate.yml"
        )
        # A default-branch push records the baseline every PR is compared with.
        push = _event(emulator, "push") | {
            "ref": "refs/heads/main",
            "after": repo.head("main"),
            "deleted": False,
            "commits": [],
        }
        emulator.send_webhook("push", push)

        def change(version: sample.DataVersion) -> dict[str, str | bytes | None]:
            files = sample.files(version, sample.BASE_PARAMS, source="run")
            names = ("data/images.dvc", "dvc.lock", "data/features.csv")
            return {name: files[name] for name in names}

        repo.commit("more-data", change(sample.BETTER_DATA), "Add 64 images and 60 rows")
        pull = emulator.open_pull_request(
            REPO, head="more-data", base="main", user=AUTHOR, title="More training data"
        )
        number = int(pull["number"])
        echo(f"3. {AUTHOR} opens PR #{number}: a new data version (data/images.dvc, dvc.lock)")
        status = emulator.send_webhook("pull_request", _event(emulator, "opened", number))
        echo(f"   webhook answered {status}; the worker evaluates {pull['head']['sha'][:7]} ...")
        first = _wait_for_quality(emulator, pull["head"]["sha"], worker_log)
        _show(echo, emulator, number, first)

        head = repo.commit("more-data", change(sample.WORSE_DATA), "Relabel with the new vendor")
        echo(f"4. {AUTHOR} pushes {head[:7]}: the new labels are noisy")
        emulator.send_webhook("pull_request", _event(emulator, "synchronize", number))
        second = _wait_for_quality(emulator, head, worker_log)
        _show(echo, emulator, number, second)

        comments = emulator.comments(REPO, number)
        data = parse_data(comments[-1]["body"]) or {}
        echo(
            f"5. One sticky comment (edited in place, {len(comments)} in all); "
            f"mlgate/quality went {first['conclusion']} → {second['conclusion']} "
            f"(verdict {data.get('verdict')}); {time.monotonic() - started:.1f} s in all."
        )
        retrained, retrain_check = _retrain_act(echo, emulator, repo, change, worker_log)
        ok = (first["conclusion"], second["conclusion"], len(comments)) == (
            "success",
            "failure",
            1,
        )
        return 0 if ok and retrained and retrain_check["status"] == "completed" else 1


def _retrain_act(
    echo: Echo,
    emulator: GitHubEmulator,
    repo: EmulatedRepo,
    change: Callable[[sample.DataVersion], dict[str, str | bytes | None]],
    worker_log: Path,
) -> tuple[bool, dict[str, Any]]:
    """The fourth act: new data pushed to main retrains, and mlgate opens the PR."""
    before = repo.head("main")
    data = change(sample.BETTER_DATA)
    pushed = repo.commit("main", data, "Add 64 images and 60 rows", author=ENGINEER)
    echo(
        f"6. {ENGINEER} pushes new data straight to main ({pushed[:7]}): mlgate retrains that "
        "commit in the sandbox (retrain.on_data) ..."
    )
    push = _event(emulator, "push", sender=ENGINEER) | {
        "ref": "refs/heads/main",
        "before": before,
        "after": pushed,
        "deleted": False,
        "commits": [{"id": pushed, "added": [], "removed": [], "modified": sorted(data)}],
    }
    started = time.monotonic()
    emulator.send_webhook("push", push)
    pull = _wait_for_retrain_pr(emulator, worker_log)
    number, head = int(pull["number"]), pull["head"]["sha"]
    files = [c.filename for c in repo.git.diff(pushed, head)]
    echo(
        f"   {time.monotonic() - started:.1f} s later: PR #{number} “{pull['title']}” by "
        f"{pull['user']['login']} from {pull['head']['ref']}, label "
        f"{', '.join(label['name'] for label in pull['labels'])}, committing {', '.join(files)}"
    )
    for line in pull["body"].splitlines():
        echo(f"   > {line}" if line else "   >")
    # GitHub tells the App of the PR it opened, as of any other; the emulator leaves it to us.
    emulator.send_webhook("pull_request", _event(emulator, "opened", number))
    check = _wait_for_quality(emulator, head, worker_log)
    _show(echo, emulator, number, check)
    return pull["title"] == f"Retrain on new data ({pushed[:7]})", check
