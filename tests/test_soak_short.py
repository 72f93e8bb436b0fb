"""The soak of bench/soak, short: 500 signed deliveries (5% duplicates) to real `mlgate serve`
and `mlgate worker` processes, while the soak's own redis-server restarts, a worker machine is
SIGKILLed and a fifth of the emulator's GitHub answers fail (502, and 403 with retry-after).

Nothing is timed: the run waits as long as the work makes progress, and only the counts are
judged. The full size is run by hand (`python -m bench.soak`, bench/README.md).
"""

from __future__ import annotations

from pathlib import Path

from bench.soak.__main__ import render
from bench.soak.run import SoakConfig, soak
from bot.embedded_redis import find_redis_server

SHORT = SoakConfig(
    deliveries=500,
    prs=10,
    rate=25.0,
    senders=4,
    # A short run cannot wait for `mlgate scheduler`'s 30 s sweep for the killed machine's
    # jobs: the test sweeps the same way, every 2 s.
    sweep_every=2.0,
    retry_delays="1,2,4",
    redis_down=2.0,
    # Given up only after this long without any progress (not a speed figure). A retry waits
    # in rq's scheduled registry until a worker holds rq's scheduler lock; when the killed
    # machine held it, another worker takes it at its next maintenance, up to 10 minutes on.
    stall_timeout=720.0,
    drain_timeout=1200.0,
)


def test_a_short_soak_loses_nothing_and_does_nothing_twice(tmp_path: Path) -> None:
    assert find_redis_server()  # the soak's own Redis, restarted in the middle
    report = soak(SHORT, quiet=True, work_dir=tmp_path / "soak")
    shown = render(report)

    # The chaos happened.
    assert report.chaos["redis_down_s"] >= SHORT.redis_down, shown
    assert report.chaos["processes_killed"] >= 1, shown
    assert report.chaos["github_502"] > 0 and report.chaos["github_403_retry_after"] > 0, shown
    assert report.sent["unique"] == 475 and report.sent["duplicates"] == 25, shown

    assert report.verdicts["settled within the drain timeout"], shown
    # Every delivery answered 2xx in the end (a 503 while Redis was down is sent again, as
    # GitHub redelivers), every one of them done.
    assert report.verdicts["every delivery answered 2xx in the end"], shown
    assert report.lost == {
        "deliveries_not_done": 0,
        "deliveries_failed": 0,
        "prs_without_sticky_comment": 0,
        "commands_without_reply": 0,
        "prs_without_final_check": 0,
    }, shown
    assert report.duplicate_effects == {
        "deliveries_accepted_twice": 0,
        "extra_sticky_comments": 0,
        "extra_replies": 0,
    }, shown
    assert [p.sticky_comments for p in report.prs] == [1] * SHORT.prs, shown
    assert all(p.replies == p.commands for p in report.prs), shown
    # Every evaluation reached its verdict (an interrupted one ran again to the end).
    assert [p.final_conclusion for p in report.prs] == ["success"] * SHORT.prs, shown
    # Every job ended done: none failed for good (attempts that failed were retried).
    assert report.jobs.get("failed", 0) == 0, shown
    assert report.jobs.get("finished", 0) >= report.sent["unique"] + SHORT.prs, shown
    assert report.passed, shown
