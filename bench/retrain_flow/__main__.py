"""`python -m bench.retrain_flow`: a data push on main to the retrain PR opened (or moved)."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rq.job import Job

from bench.evaluation_flow.calls import EventCalls, event_calls, summary
from bench.evaluation_flow.stack import Stack, StackError, running
from bot.emulator.github_models import EmulatedRepo
from bot.runs import runner
from bot.runs.retrain_loop import job_kind
from bot.state.queues import run_job_id
from bot.state.redis_conn import key

RESULTS = Path(__file__).resolve().parents[1] / "results"
REPO = "acme/retrained"
INSTALLATION = 11
ENGINEER = "dana"
POLL = 0.02
WAIT = 120.0
CONFIG = """\
version: 1
retrain:
  run: python3 train.py
  on_data: true
  outputs: [metrics.json, "models/*.dvc"]
"""
# A one-second retrain: the wait stands for training; the outputs follow the data.
TRAIN_PY = """\
import json, re, time
time.sleep(1.0)
n = int(re.search(r"nfiles: (\\d+)", open("data/images.dvc").read()).group(1))
json.dump({"accuracy": round(1 - 1 / n, 4)}, open("metrics.json", "w"))
open("models/model.dvc", "w").write(f"outs:\\n- md5: {n * 7919:032x}\\n  path: model.pkl\\n")
"""


class BenchError(Exception):
    """A round did not end as it must (no PR, a second PR, a failed job)."""


def images_dvc(nfiles: int) -> str:
    return f"outs:\n- md5: {nfiles:032x}.dir\n  nfiles: {nfiles}\n  path: images\n"


@dataclass(frozen=True)
class Round:
    """One data push: how long until the PR showed it, and the calls it cost."""

    kind: str  # "opened" or "moved"
    seconds: float
    calls: EventCalls


def _say(message: str = "") -> None:
    click.echo(message)
    sys.stdout.flush()


def _pulls(stack: Stack) -> list[dict[str, Any]]:
    emulator = stack.emulator
    return [
        emulator.pull_request(REPO, i["number"])
        for i in emulator.issues(REPO)
        if "pull_request" in i
    ]


def _wait(what: str, found: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(POLL)
    raise BenchError(f"no {what} after {WAIT:.0f} s")


def _push(stack: Stack, repo: EmulatedRepo, nfiles: int, kind: str, idle: bool) -> Round:
    """Push new data to main; wait for the retrain PR to show it, then for every job to end."""
    emulator = stack.emulator
    before = repo.head("main")
    data = {"data/images.dvc": images_dvc(nfiles)}
    after = repo.commit("main", data, f"{nfiles} images", author=ENGINEER)
    event = {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "deleted": False,
        "commits": [{"id": after, "added": [], "removed": [], "modified": sorted(data)}],
        "repository": emulator.repository(REPO),
        "installation": {"id": INSTALLATION},
        "sender": emulator.user_json(ENGINEER),
    }
    if idle:
        # A full pacing bucket, as 10 s without a write would give (bot/state/pacing.py):
        # data pushes are rare, and back to back they measure GitHub-friendly pacing instead.
        stack.redis.delete(key("pace", INSTALLATION))
    emulator.clear_requests()
    started = time.monotonic()
    if emulator.send_webhook("push", event) != 202:
        raise BenchError("the push webhook was not accepted")

    def shown() -> dict[str, Any] | None:
        for pull in _pulls(stack):
            info = repo.git.commit_info(pull["head"]["sha"]) if pull["state"] == "open" else None
            if info is not None and info.parents == (after,) and pull["labels"]:
                return pull
        return None

    _wait(f"retrain PR on {after[:7]}", shown)
    seconds = time.monotonic() - started
    job_ids = [
        run_job_id(job_kind("data"), REPO, None, after),
        run_job_id("baseline", REPO, None, after),
    ]

    def finished() -> bool:
        statuses = [Job.fetch(j, connection=stack.redis).get_status() for j in job_ids]
        if "failed" in statuses:
            raise BenchError(f"a job of {after[:7]} failed; see the worker's log")
        return all(s == "finished" for s in statuses)

    _wait("finished jobs", finished)
    if kind == "moved" and len([p for p in _pulls(stack) if p["state"] == "open"]) != 1:
        raise BenchError("a second retrain PR was opened")
    calls = event_calls("push", emulator.requests, {after: "pushed", before: "before"})
    return Round(kind, seconds, calls)


def _floor(stack: Stack, repo: EmulatedRepo) -> float:
    """The least a retrain can take here: fetch the commit and run train.py in the sandbox,
    in this process, with no webhook, queue or API call."""
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-floor-") as data:
        sha = repo.head("main")
        checkout = runner.checkout_path(Path(data), REPO, None, sha)
        started = time.monotonic()
        runner.fetch(repo.path.as_uri(), sha, checkout, None)
        env = runner.run_environment(
            params={},
            run_id="floor",
            repo=REPO,
            pr=None,
            sha=sha,
            allowed_secrets={},
            home=runner.fresh_home(checkout),
        )
        result = runner.run(
            ["python3", "train.py"], checkout, env=env, timeout=60, data_dir=Path(data)
        )
        seconds = time.monotonic() - started
        runner.remove_checkout(checkout)
    if result.exit_code != 0:
        raise BenchError(f"train.py failed in the sandbox: {result.log[-500:]}")
    return seconds


def _run(stack: Stack, rounds: int, moves: int, idle: bool) -> dict[str, Any]:
    emulator = stack.emulator
    permissions = {**emulator.installation_permissions, "contents": "write"}
    emulator.add_installation(INSTALLATION, "acme", permissions)
    files = {
        ".github/mlgate.yml": CONFIG,
        "train.py": TRAIN_PY,
        "data/images.dvc": images_dvc(100),
        "metrics.json": "{}",
        "models/model.dvc": "outs: []\n",
    }
    repo = emulator.create_repo(REPO, installation_id=INSTALLATION, files=files)
    floors, opened, moved = [], [], []
    nfiles = 100
    for index in range(rounds):
        floors.append(_floor(stack, repo))
        nfiles += 1
        result = _push(stack, repo, nfiles, "opened", idle)
        opened.append(result)
        number = _pulls(stack)[-1]["number"]
        _say(
            f"round {index + 1}: floor {floors[-1]:.2f} s, push → PR #{number} opened "
            f"{result.seconds:.2f} s, {result.calls.count} API calls + "
            f"{result.calls.token_requests} token"
        )
        for _ in range(moves):
            nfiles += 1
            step = _push(stack, repo, nfiles, "moved", idle)
            moved.append(step)
            _say(
                f"         push → PR #{number} moved {step.seconds:.2f} s, {step.calls.count} calls"
            )
        emulator.close_pull_request(REPO, number)
    ms = 1000.0
    return {
        "floor_ms": summary([f * ms for f in floors]),
        "opened_ms": summary([r.seconds * ms for r in opened]),
        "moved_ms": summary([r.seconds * ms for r in moved]),
        "overhead_ms": summary([(r.seconds - f) * ms for r, f in zip(opened, floors, strict=True)]),
        "calls_opened": _calls(opened),
        "calls_moved": _calls(moved),
    }


def _named(pattern: str, detail: str) -> str:
    """One row per kind of call: refs by kind, contents reads by file, as a reader compares."""
    pattern = re.sub(r"/git/refs/.+$", "/git/refs/{ref}", pattern)
    return f"{pattern} [{detail}]" if "/contents/" in pattern else pattern


def _calls(results: list[Round]) -> dict[str, Any]:
    if not results:
        return {}
    rows: Counter[str] = Counter()
    for r in results:
        rows.update(_named(p, d) for p, d, _ in r.calls.calls)
    n = len(results)
    return {
        "per_push": round(sum(r.calls.count for r in results) / n, 2),
        "token_requests_per_push": round(sum(r.calls.token_requests for r in results) / n, 2),
        "by_call_per_push": {p: round(c / n, 2) for p, c in sorted(rows.items())},
    }


def _show(result: dict[str, Any]) -> None:
    _say()
    for name in ("floor_ms", "opened_ms", "moved_ms", "overhead_ms"):
        s = result[name]
        if s:
            figures = "  ".join(f"{k} {s[k]:6.0f}" for k in ("min", "p50", "max"))
            _say(f"{name:11} n={s['n']:<3} {figures}")
    for name in ("calls_opened", "calls_moved"):
        c = result[name]
        if c:
            _say(f"{name}: {c['per_push']} per push (+{c['token_requests_per_push']} token)")
            for row, count in c["by_call_per_push"].items():
                _say(f"    {count:5.2f}  {row}")


@click.command()
@click.option("--rounds", default=5, show_default=True, help="Retrain PRs opened (and closed).")
@click.option("--moves", default=2, show_default=True, help="Data pushes per PR that move it.")
@click.option(
    "--back-to-back",
    is_flag=True,
    help="Push as soon as the last PR showed, without the idle time that refills the pacing "
    "bucket: mutating calls are then paced to 1 per second per installation.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON result (default: bench/results/retrain_flow-<time>.json).",
)
def main(rounds: int, moves: int, back_to_back: bool, output: Path | None) -> None:
    """Seconds from a data push on main to the retrain PR opened, then moved by later pushes,
    with a one-second retrain, and the GitHub API calls each push costs: the web app and the
    real `mlgate worker` (retrains in the sandbox) against the GitHub emulator. The floor is
    the same fetch and retrain run directly in this process, measured in every round.
    """
    if rounds < 1 or moves < 0:
        raise click.UsageError("--rounds must be positive and --moves not negative")
    started_at = datetime.now(UTC)
    began = time.monotonic()
    try:
        with running() as stack:
            result = _run(stack, rounds, moves, not back_to_back)
    except (StackError, BenchError) as exc:
        raise click.ClickException(str(exc)) from exc
    _show(result)
    result_file = output or RESULTS / f"retrain_flow-{started_at:%Y%m%dT%H%M%SZ}.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "retrain_flow",
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - began, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "rounds": rounds,
            "moves": moves,
            "back_to_back": back_to_back,
            "retrain_seconds": 1.0,
        },
        "result": result,
    }
    result_file.write_text(json.dumps(document, indent=2) + "\n")
    _say(f"\nwritten to {result_file}")


if __name__ == "__main__":
    main()
