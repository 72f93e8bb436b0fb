"""Re-record the DVC fidelity goldens: real `dvc metrics diff --json` on every scenario.

Builds each repository of tests/dvc_fidelity_scenarios.py, runs an installed DVC on it
and writes what DVC printed to tests/fixtures/dvc_fidelity/goldens.json. DVC is not a
dependency of mlgate: install it in a venv of its own, e.g.

    python3 -m venv /tmp/dvcvenv && /tmp/dvcvenv/bin/pip install dvc==3.67.1
    .venv/bin/python -m bench.record_dvc_goldens --dvc /tmp/dvcvenv/bin/dvc

`--check` compares instead of writing and exits 1 on any difference, to see whether a
newer DVC still prints the same thing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from tests.dvc_fidelity_scenarios import SCENARIOS, Scenario, build

ROOT = Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "tests" / "fixtures" / "dvc_fidelity" / "goldens.json"
# DVC's stderr line naming the revisions whose metrics did not load (dvc/commands/metrics.py).
FAILED_LINE = re.compile(r"DVC failed to load some metrics for following revisions: '(.*)'\.")


def run_dvc(dvc: str, scenario: Scenario, repo: Path) -> dict[str, Any]:
    """What DVC prints for the scenario: the parsed JSON, failed revisions, exit status."""
    argv = [dvc, "metrics", "diff", scenario.base, scenario.head, "--json"]
    if scenario.all:
        argv.append("--all")
    if scenario.targets:
        argv += ["--targets", *scenario.targets]
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}
    result = subprocess.run(argv, cwd=repo, capture_output=True, text=True, env=env, check=False)
    failed = FAILED_LINE.search(result.stderr)
    return {
        "json": json.loads(result.stdout) if result.stdout.strip() else None,
        "failed": failed.group(1).split(", ") if failed else [],
        "exit": result.returncode,
    }


def dvc_version(dvc: str) -> str:
    result = subprocess.run([dvc, "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def record(dvc: str, only: tuple[str, ...] = ()) -> dict[str, Any]:
    goldens: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dvc-fidelity-") as scratch:
        for index, scenario in enumerate(SCENARIOS):
            if only and scenario.name not in only:
                continue
            repo = Path(scratch) / f"s{index}"
            repo.mkdir()
            build(scenario, repo)
            goldens[scenario.name] = {"source": scenario.source, **run_dvc(dvc, scenario, repo)}
    return goldens


def canonical(value: Any) -> str:
    """JSON with sorted keys: DVC iterates sets, so its key order means nothing."""
    return json.dumps(value, sort_keys=True)


@click.command()
@click.option("--dvc", default="dvc", show_default=True, help="The dvc executable to run.")
@click.option("--check", is_flag=True, help="Compare with the stored goldens, write nothing.")
@click.option("--only", multiple=True, help="Only this scenario (repeatable); others are kept.")
def main(dvc: str, check: bool, only: tuple[str, ...]) -> None:
    """Record (or check) what DVC prints for every fidelity scenario."""
    version = dvc_version(dvc)
    goldens = record(dvc, only)
    stored = json.loads(GOLDENS.read_text())["scenarios"] if GOLDENS.exists() else {}
    if check:
        differ = [n for n in goldens if canonical(goldens[n]) != canonical(stored.get(n))]
        for name in differ:
            click.echo(f"differs: {name}: now {canonical(goldens[name])}")
        click.echo(f"DVC {version}: {len(goldens) - len(differ)} of {len(goldens)} as recorded")
        sys.exit(1 if differ else 0)
    if only:
        goldens = {name: value for name, value in stored.items()} | goldens
    names = {s.name for s in SCENARIOS}
    goldens = {name: value for name, value in goldens.items() if name in names}
    GOLDENS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "dvc_version": version,
        "command": "dvc metrics diff BASE HEAD --json",
        "scenarios": goldens,
    }
    GOLDENS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    click.echo(
        f"recorded {len(goldens)} scenarios from DVC {version} in {GOLDENS.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
