"""`python -m bench.soak`: deliveries under chaos, and whether anything was lost or doubled."""

from __future__ import annotations

import json
import platform
import sys
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.soak.run import SoakConfig, SoakReport, soak

RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULTS = SoakConfig()


def _table(title: str, rows: Mapping[str, object]) -> list[str]:
    width = max((len(k) for k in rows), default=0)
    return [title, *(f"  {k.ljust(width)}  {v}" for k, v in rows.items())]


def render(report: SoakReport) -> str:
    """The report as the tables bench/README.md quotes."""
    prs = report.prs
    spread = {
        "PRs": len(prs),
        "sticky comments per PR (min-max)": _span([p.sticky_comments for p in prs]),
        "replies per PR = commands (PRs)": sum(1 for p in prs if p.replies == p.commands),
        "mlgate/quality check runs per PR (min-max)": _span([p.quality_checks for p in prs]),
        "of them interrupted, shown neutral": sum(p.interrupted_checks for p in prs),
        "final mlgate/quality": dict(sorted(Counter(str(p.final_conclusion) for p in prs).items())),
    }
    lines = [
        *_table("sent", report.sent),
        *_table("answers (HTTP status: count)", report.answers),
        *_table("jobs (mlgate_jobs_total by status)", report.jobs),
        *_table("GitHub requests (mlgate_github_requests_total by status)", report.github),
        *_table("chaos", report.chaos),
        *_table("per PR", spread),
        *_table("lost", report.lost),
        *_table("duplicate effects", report.duplicate_effects),
        *_table("seconds", report.seconds),
        "",
        *(f"{'met    ' if ok else 'NOT MET'}  {name}" for name, ok in report.verdicts.items()),
    ]
    return "\n".join(lines)


def _span(values: list[int]) -> str:
    return f"{min(values)}-{max(values)}" if values else "-"


@click.command()
@click.option("--deliveries", default=DEFAULTS.deliveries, show_default=True)
@click.option(
    "--duplicates",
    default=DEFAULTS.duplicates,
    show_default=True,
    help="Share of the deliveries sent again with an id sent before.",
)
@click.option(
    "--prs",
    default=DEFAULTS.prs,
    show_default=True,
    help="Pull requests, one repository and installation each.",
)
@click.option(
    "--commands",
    default=DEFAULTS.commands,
    show_default=True,
    help="Share of the comments that are `/help`.",
)
@click.option(
    "--fault-rate",
    default=DEFAULTS.fault_rate,
    show_default=True,
    help="Share of GitHub's answers that fail (502, or 403 with retry-after).",
)
@click.option("--rate", default=DEFAULTS.rate, show_default=True, help="Deliveries per second.")
@click.option(
    "--machines",
    default=DEFAULTS.machines,
    show_default=True,
    help="`mlgate worker` processes at once.",
)
@click.option(
    "--redis-down",
    default=DEFAULTS.redis_down,
    show_default=True,
    help="Seconds Redis stays down when restarted.",
)
@click.option("--no-redis-restart", is_flag=True)
@click.option("--no-kill", is_flag=True, help="Kill no worker.")
@click.option(
    "--retry-delays",
    default=DEFAULTS.retry_delays,
    show_default=True,
    help="MLGATE_RETRY_DELAYS of the run (the product's default: 10,60,300).",
)
@click.option("--drain-timeout", default=DEFAULTS.drain_timeout, show_default=True)
@click.option(
    "--stall-timeout",
    default=DEFAULTS.stall_timeout,
    show_default=True,
    help="Stop draining after this many seconds without progress.",
)
@click.option("--seed", default=DEFAULTS.seed, show_default=True)
def main(
    deliveries: int,
    duplicates: float,
    prs: int,
    commands: float,
    fault_rate: float,
    rate: float,
    machines: int,
    redis_down: float,
    no_redis_restart: bool,
    no_kill: bool,
    retry_delays: str,
    drain_timeout: float,
    stall_timeout: float,
    seed: int,
) -> None:
    """10,000 signed deliveries (5% duplicates) to `mlgate serve` and `mlgate worker`, with
    Redis restarted, a worker killed and 20% of GitHub's answers failing; exit 1 if anything
    was lost or done twice."""
    config = SoakConfig(
        deliveries=deliveries,
        duplicates=duplicates,
        prs=prs,
        commands=commands,
        fault_rate=fault_rate,
        rate=rate,
        machines=machines,
        redis_down=redis_down,
        restart_redis=not no_redis_restart,
        kill_worker=not no_kill,
        retry_delays=retry_delays,
        drain_timeout=drain_timeout,
        stall_timeout=stall_timeout,
        seed=seed,
    )
    report = soak(config)
    click.echo(render(report))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"soak-{stamp}.json"
    data = report.as_json() | {"python": platform.python_version()}
    out.write_text(json.dumps(data, indent=2) + "\n")
    click.echo(f"\nwritten to {out.relative_to(RESULTS.parent.parent)}")
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
