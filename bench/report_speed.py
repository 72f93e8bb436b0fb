"""Benchmark: `mlgate report --json` against `dvc metrics diff --json` on the same repo."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click

from bot import sample
from bot.core.report import report_json
from bot.runs.local_git import GitRepo, compare_revisions

ROOT = Path(__file__).resolve().parent.parent
GROUP = 100  # metrics per nested group in the generated metrics.json


def metrics(count: int, changed: bool) -> dict[str, Any]:
    """`count` metrics: accuracy and loss (the sample's gates) and the rest nested two deep.

    On the changed side every other metric moves, so the diff holds about half of them.
    """
    data: dict[str, Any] = {"accuracy": 0.8708, "loss": 0.4419}
    if changed:
        data = {"accuracy": 0.9133, "loss": 0.3546}
    for index in range(count - 2):
        value = round((index * 7919 % 10_007) / 10_007, 4)
        if changed and index % 2 == 0:
            value = round(value + 0.0125, 4)
        group = data.setdefault(f"group_{index // GROUP:03d}", {})
        group[f"metric_{index % GROUP:02d}"] = value
    return data


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env=os.environ
        | {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        },
    )


def make_repo(path: Path, count: int) -> None:
    """The sample DVC repository (with `.dvc/`, so DVC accepts it) on `main`, and a `feature`
    branch checked out with new data and a new metrics.json of `count` metrics."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch", "main")
    sides = (
        ("main", sample.BASE_DATA, False),
        ("feature", sample.BETTER_DATA, True),
    )
    for branch, version, changed in sides:
        if branch != "main":
            git(path, "checkout", "--quiet", "-b", branch)
        files = sample.files(version, sample.BASE_PARAMS)
        files["metrics.json"] = json.dumps(metrics(count, changed), indent=2) + "\n"
        files[".dvc/config"] = ""
        files[".dvc/.gitignore"] = "/config.local\n/tmp\n/cache\n"
        for name, text in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
        git(path, "add", "--all")
        git(path, "commit", "--quiet", "--message", branch)


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each measured run, and the parsed output of the last one."""

    seconds: list[float]
    output: Any

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run_command(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    # Exit 1 is a failed gate, still a complete report; anything else is a broken run.
    if result.returncode not in (0, 1):
        raise click.ClickException(f"{argv[0]} failed: {result.stderr.decode(errors='replace')}")
    return elapsed, json.loads(result.stdout)


def in_process(repo: Path) -> tuple[float, Any]:
    """The comparison and the JSON alone, without interpreter start-up and imports."""
    start = time.perf_counter()
    with GitRepo.open(repo) as local:
        text = json.dumps(report_json(compare_revisions(local, "main", "HEAD")))
    return time.perf_counter() - start, json.loads(text)


def measure(contenders: dict[str, Callable[[], tuple[float, Any]]], runs: int) -> dict[str, Timing]:
    """One warm-up each, then `runs` rounds; the order alternates so no one gets the quieter
    moments of a noisy machine."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, Any] = {}
    names = list(contenders)
    for name in names:
        contenders[name]()
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else reversed(names):
            elapsed, outputs[name] = contenders[name]()
            seconds[name].append(elapsed)
    return {name: Timing(seconds[name], outputs[name]) for name in names}


def find_dvc(given: str | None) -> str | None:
    return given or shutil.which("dvc")


@click.command()
@click.option("--sizes", default="10,10000", show_default=True, help="Metrics counts.")
@click.option("--runs", default=7, show_default=True, help="Measured runs per command.")
@click.option("--dvc", "dvc_path", help="The dvc executable (default: `dvc` on PATH).")
def main(sizes: str, runs: int, dvc_path: str | None) -> None:
    """Time `mlgate report --json` (and `dvc metrics diff --json`, if dvc is found) on
    generated repositories; print a Markdown table for bench/README.md."""
    dvc = find_dvc(dvc_path)
    env = os.environ | {"PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    mlgate = [sys.executable, "-m", "bot.cli", "report", "--base", "main", "--json"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlgate-report-bench-") as tmp:
        for count in (int(s) for s in sizes.split(",")):
            repo = Path(tmp) / f"metrics-{count}"
            make_repo(repo, count)
            contenders: dict[str, Callable[[], tuple[float, Any]]] = {
                "mlgate report --json": partial(run_command, mlgate, repo, env),
                "compare + JSON in process": partial(in_process, repo),
            }
            if dvc is not None:
                argv = [dvc, "metrics", "diff", "main", "HEAD", "--json"]
                contenders["dvc metrics diff --json"] = partial(run_command, argv, repo, env)
            click.echo(f"{count:,} metrics: {runs} runs of {len(contenders)} commands", err=True)
            timings = measure(contenders, runs)
            ours = timings["mlgate report --json"]
            changed = sum(len(v) for v in ours.output.values())
            same = ""
            if "dvc metrics diff --json" in timings:
                theirs = timings["dvc metrics diff --json"]
                # Each round ran both back to back: the paired ratio resists a noisy machine.
                ratio = statistics.median(
                    d / m for d, m in zip(theirs.seconds, ours.seconds, strict=True)
                )
                same = "identical" if theirs.output == ours.output else "DIFFERENT"
                same += f"; {ratio:.1f}× mlgate's time (paired median)"
            for name, timing in timings.items():
                rows.append(
                    f"| {count:,} ({changed:,} changed) | {name} | {timing.median * 1000:,.0f} ms "
                    f"| {min(timing.seconds) * 1000:,.0f}–{max(timing.seconds) * 1000:,.0f} ms "
                    f"| {same if name.startswith('dvc') else ''} |"
                )
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    dvc_version = "not found"
    if dvc is not None:
        dvc_version = subprocess.run([dvc, "--version"], capture_output=True, text=True).stdout
    click.echo(
        f"Python {platform.python_version()}, {git_version.strip()}, "
        f"DVC {dvc_version.strip()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"median of {runs} runs after one warm-up each, order alternating.\n"
    )
    click.echo("| metrics | command | median | range | JSON vs dvc |")
    click.echo("|---|---|---:|---:|---|")
    for row in rows:
        click.echo(row)


if __name__ == "__main__":
    main()
