"""Benchmark: `mlgate report --json` against `dvc metrics diff --json` and the floor."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
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
MLGATE = "mlgate report --json"
DVC = "dvc metrics diff --json"
FLOOR_NAME = "floor: python + cat-file + parse"
HELP = "mlgate --help"
BARE = "python -c pass"

# The floor: what any Python implementation of `dvc metrics diff --json` must at least do
# here. The interpreter starts (with the same site-packages as mlgate), one `git cat-file
# --batch` reads dvc.yaml and the metrics files at both revisions, libyaml's C loader and
# json parse them, the changed values are diffed and printed. It knows this repository's
# layout (one root dvc.yaml, JSON metrics) and checks nothing, so no real tool can beat it.
FLOOR = r"""
import json, subprocess, sys
import yaml

def flat(data, prefix=""):
    for name, value in data.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield prefix + name, value

PIPE = subprocess.PIPE
git = subprocess.Popen(["git", "cat-file", "--batch"], stdin=PIPE, stdout=PIPE)

def read(name):
    git.stdin.write(name.encode() + b"\n")
    git.stdin.flush()
    fields = git.stdout.readline().split()
    if len(fields) != 3:
        return None
    content = git.stdout.read(int(fields[2]))
    git.stdout.read(1)
    return content

sides = []
for rev in sys.argv[1:3]:
    stages = yaml.load(read(rev + ":dvc.yaml"), Loader=yaml.CSafeLoader)["stages"]
    paths = [next(iter(m)) if isinstance(m, dict) else m
             for stage in stages.values() for m in stage.get("metrics", [])]
    sides.append({p: dict(flat(json.loads(c))) for p in paths if (c := read(f"{rev}:{p}"))})
git.stdin.close()
git.wait()
old, new = sides
out = {}
for path in sorted(old.keys() | new.keys()):
    a, b = old.get(path, {}), new.get(path, {})
    moved = [k for k in b if k in a and a[k] != b[k]]
    diff = {k: {"old": a[k], "new": b[k], "diff": b[k] - a[k]} for k in moved}
    if diff:
        out[path] = diff
print(json.dumps(out))
"""


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
    """Wall-clock and CPU seconds of each measured run, and the parsed output of the last one."""

    seconds: list[float]
    cpu: list[float]
    output: Any

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


Run = Callable[[], tuple[float, float, Any]]


def run_command(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], parse: bool = True
) -> tuple[float, float, Any]:
    """Wall and CPU seconds (the process and every child it waited for: git too) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Exit 1 is a failed gate, still a complete report; anything else is a broken run.
    if result.returncode not in (0, 1):
        raise click.ClickException(f"{argv[0]} failed: {result.stderr.decode(errors='replace')}")
    return elapsed, cpu, json.loads(result.stdout) if parse else None


def in_process(repo: Path) -> tuple[float, float, Any]:
    """The comparison and the JSON alone, without interpreter start-up and imports."""
    start, cpu = time.perf_counter(), time.process_time()
    with GitRepo.open(repo) as local:
        text = json.dumps(report_json(compare_revisions(local, "main", "HEAD")))
    return time.perf_counter() - start, time.process_time() - cpu, json.loads(text)


def measure(contenders: dict[str, Run], runs: int) -> dict[str, Timing]:
    """One warm-up each, then `runs` rounds; the order alternates so no one gets the quieter
    moments of a noisy machine."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, Any] = {}
    names = list(contenders)
    for name in names:
        contenders[name]()
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else reversed(names):
            elapsed, used, outputs[name] = contenders[name]()
            seconds[name].append(elapsed)
            cpu[name].append(used)
    return {name: Timing(seconds[name], cpu[name], outputs[name]) for name in names}


def paired(numerator: Timing, denominator: Timing) -> tuple[float, float]:
    """Median per-round ratios of wall and of CPU time: both ran back to back in each round,
    so a noisy moment hits both."""
    return (
        statistics.median(
            n / d for n, d in zip(numerator.seconds, denominator.seconds, strict=True)
        ),
        statistics.median(n / d for n, d in zip(numerator.cpu, denominator.cpu, strict=True)),
    )


def find_dvc(given: str | None) -> str | None:
    return given or shutil.which("dvc")


def bench_env(tmp: str) -> dict[str, str]:
    """The environment of every measured process.

    Bytecode is written to (and read from) a cache of the run's own, as for an installed
    mlgate, whose wheel is compiled at install: with PYTHONDONTWRITEBYTECODE set, as on some
    machines, every run would compile mlgate's sources again and measure the compiler.
    """
    env = os.environ | {"PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
    return env


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


@click.command()
@click.option("--sizes", default="10,1000,10000", show_default=True, help="Metrics counts.")
@click.option("--runs", default=9, show_default=True, help="Measured runs per command.")
@click.option("--dvc", "dvc_path", help="The dvc executable (default: `dvc` on PATH).")
@click.option(
    "--also",
    "others",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another mlgate checkout (e.g. a `git archive` of an older commit) to time beside "
    "this one, on the same repositories in the same rounds.",
)
def main(sizes: str, runs: int, dvc_path: str | None, others: tuple[Path, ...]) -> None:
    """Time `mlgate report --json`, the floor and `dvc metrics diff --json` (if dvc is found)
    on generated repositories, and `mlgate --help`; print a Markdown table for
    bench/README.md and the targets' verdicts."""
    dvc = find_dvc(dvc_path)
    mlgate = [sys.executable, "-m", "bot.cli", "report", "--base", "main", "--json"]
    rows: list[str] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-report-bench-") as tmp:
        env = bench_env(tmp)
        for count in (int(s) for s in sizes.split(",")):
            repo = Path(tmp) / f"metrics-{count}"
            make_repo(repo, count)
            contenders: dict[str, Run] = {
                MLGATE: partial(run_command, mlgate, repo, env),
                FLOOR_NAME: partial(
                    run_command, [sys.executable, "-c", FLOOR, "main", "HEAD"], repo, env
                ),
                "compare + JSON in process": partial(in_process, repo),
            }
            for other in others:
                other_env = env | {"PYTHONPATH": str(other.resolve())}
                contenders[f"{MLGATE} ({other.name})"] = partial(
                    run_command, mlgate, repo, other_env
                )
            if dvc is not None:
                argv = [dvc, "metrics", "diff", "main", "HEAD", "--json"]
                contenders[DVC] = partial(run_command, argv, repo, env)
            click.echo(f"{count:,} metrics: {runs} runs of {len(contenders)} commands", err=True)
            timings = measure(contenders, runs)
            ours, floor = timings[MLGATE], timings[FLOOR_NAME]
            changed = sum(len(v) for v in ours.output.values())
            notes: dict[str, str] = {}
            for name, timing in timings.items():
                if name == FLOOR_NAME or name.startswith("compare"):
                    continue
                wall, cpu = paired(timing, floor)
                notes[name] = f"{wall:.2f}× / {cpu:.2f}× the floor"
            floor_same = "identical" if floor.output == ours.output else "DIFFERENT"
            notes[FLOOR_NAME] = f"JSON {floor_same} to mlgate's"
            if DVC in timings:
                theirs = timings[DVC]
                wall, cpu = paired(theirs, ours)
                same = "identical" if theirs.output == ours.output else "DIFFERENT"
                notes[DVC] = f"JSON {same}; {wall:.1f}× / {cpu:.1f}× mlgate's time"
                if count == 1000:
                    met = "met" if wall >= 8 and same == "identical" else "NOT MET"
                    verdicts.append(
                        f"{met}  1,000 metrics: dvc takes {wall:.1f}× mlgate's wall time "
                        f"({cpu:.1f}× its CPU), JSON {same} (target >= 8×, identical)"
                    )
            if count in (10, 10_000):
                wall, cpu = paired(ours, floor)
                met = "met" if wall <= 1.5 else "NOT MET"
                verdicts.append(
                    f"{met}  {count:,} metrics: mlgate takes {wall:.2f}× the floor's wall time "
                    f"({cpu:.2f}× its CPU) (target <= 1.5×)"
                )
            for name, timing in timings.items():
                rows.append(
                    f"| {count:,} ({changed:,} changed) | {name} | {_ms(timing.median)} "
                    f"| {_ms(min(timing.seconds))}–{_ms(max(timing.seconds))} "
                    f"| {_ms(timing.cpu_median)} | {notes.get(name, '')} |"
                )
        # --help reads no repository: timed once, beside the bare interpreter. Not from ROOT:
        # `python -m` puts the working directory first on sys.path, before PYTHONPATH.
        bare = [sys.executable, "-c", "pass"]
        where = Path(tmp)
        helps: dict[str, Run] = {
            HELP: partial(run_command, [*mlgate[:3], "--help"], where, env, False),
            BARE: partial(run_command, bare, where, env, False),
        }
        for other in others:
            other_env = env | {"PYTHONPATH": str(other.resolve())}
            helps[f"{HELP} ({other.name})"] = partial(
                run_command, [*mlgate[:3], "--help"], where, other_env, False
            )
        click.echo(f"--help: {runs} runs of {len(helps)} commands", err=True)
        help_timings = measure(helps, runs)
        for name, timing in help_timings.items():
            rows.append(
                f"| – | {name} | {_ms(timing.median)} "
                f"| {_ms(min(timing.seconds))}–{_ms(max(timing.seconds))} "
                f"| {_ms(timing.cpu_median)} | |"
            )
        shown = help_timings[HELP].median
        verdicts.append(
            f"{'met' if shown < 0.1 else 'NOT MET'}  mlgate --help: {_ms(shown)} median "
            f"(python -c pass: {_ms(help_timings[BARE].median)}) (target < 100 ms)"
        )
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    dvc_version = "not found"
    if dvc is not None:
        dvc_version = subprocess.run([dvc, "--version"], capture_output=True, text=True).stdout
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    click.echo(
        f"Python {platform.python_version()}, {git_version.strip()}, "
        f"DVC {dvc_version.strip()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"load average {load} at the end; median of {runs} runs after one warm-up each, "
        "order alternating; ratios are medians of the per-round ratios (wall / CPU).\n"
    )
    click.echo("| metrics | command | median | range | CPU | ratio |")
    click.echo("|---|---|---:|---:|---:|---|")
    for row in rows:
        click.echo(row)
    click.echo()
    for verdict in verdicts:
        click.echo(verdict)


if __name__ == "__main__":
    main()
