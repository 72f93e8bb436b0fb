"""`mlgate report --json` against what DVC 3.67.1 printed on the same repositories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.dvc_fidelity_scenarios import SCENARIOS, Scenario, build

GOLDENS_FILE = Path(__file__).parent / "fixtures" / "dvc_fidelity" / "goldens.json"
GOLDENS: dict[str, Any] = json.loads(GOLDENS_FILE.read_text())
FAILED_LINE = re.compile(r"failed to load some metrics for following revisions: '(.*)'\.")


def canonical(value: Any) -> str:
    # DVC iterates sets, so its key order means nothing; NaN survives as NaN.
    return json.dumps(value, sort_keys=True)


def run_report(scenario: Scenario, repo: Path) -> tuple[Any, list[str], int, str]:
    args = ["report", "--repo", str(repo), "--base", scenario.base, "--head", scenario.head]
    args.append("--json")
    if scenario.all:
        args.append("--all")
    result = CliRunner().invoke(main, args)
    failed = FAILED_LINE.search(result.stderr)
    printed = json.loads(result.stdout) if result.stdout.strip() else None
    return printed, failed.group(1).split(", ") if failed else [], result.exit_code, result.stderr


def test_goldens_were_recorded_from_dvc_3_67_for_every_scenario() -> None:
    assert GOLDENS["dvc_version"] == "3.67.1"
    assert sorted(GOLDENS["scenarios"]) == sorted(s.name for s in SCENARIOS)
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_report_json_is_what_dvc_printed(scenario: Scenario, tmp_path: Path) -> None:
    golden = GOLDENS["scenarios"][scenario.name]
    build(scenario, tmp_path)
    printed, failed, exit_code, stderr = run_report(scenario, tmp_path)
    if scenario.deliberate is not None:
        # A documented difference: DVC's own output stays recorded beside mlgate's.
        assert canonical(golden["json"]) != canonical(scenario.mlgate_json) or (
            golden["exit"] != scenario.mlgate_exit
        )
        assert canonical(printed) == canonical(scenario.mlgate_json), stderr
        assert failed == list(scenario.mlgate_failed), stderr
        assert exit_code == scenario.mlgate_exit, stderr
        return
    assert canonical(printed) == canonical(golden["json"]), stderr
    # The revisions named on stderr as failing to load are DVC's, base first.
    assert failed == golden["failed"], stderr
    # No gates are configured, so the exit status is DVC's 0.
    assert exit_code == golden["exit"] == 0, stderr


def test_a_broken_file_is_named_with_its_reason_beside_the_dvc_shaped_output(
    tmp_path: Path,
) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "broken[json with byte-order mark]")
    build(scenario, tmp_path)
    _, _, _, stderr = run_report(scenario, tmp_path)
    assert "WARNING: HEAD: m.json: invalid JSON: Unexpected UTF-8 BOM" in stderr


def test_a_cached_metric_without_its_cache_says_how_to_get_it(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "test_cached_metrics[cache cleared]")
    build(scenario, tmp_path)
    _, _, _, stderr = run_report(scenario, tmp_path)
    assert (
        "WARNING: HEAD~1: dir/metrics.yaml is in DVC's cache, not in git, and the local DVC "
        "cache has no copy of it"
    ) in stderr


def test_a_dvc_yaml_that_does_not_load_names_the_revision_and_file(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "test_log_errors[dvc.yaml]")
    build(scenario, tmp_path)
    _, _, _, stderr = run_report(scenario, tmp_path)
    assert "WARNING: HEAD: its DVC files do not load, so no metrics are read: dvc.yaml: " in stderr


def test_the_cache_folder_set_in_dvc_config_local_is_the_one_read(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "directory[tracked by dvc add]")
    build(scenario, tmp_path)
    elsewhere = tmp_path.parent / "shared-cache"
    (tmp_path / ".dvc" / "cache").rename(elsewhere)
    assert run_report(scenario, tmp_path)[1] == ["HEAD~1", "HEAD"]  # nothing in .dvc/cache
    # DVC resolves a relative `cache.dir` against `.dvc/`, where the config lives.
    (tmp_path / ".dvc" / "config.local").write_text("[cache]\n    dir = ../../shared-cache\n")
    printed, failed, _, stderr = run_report(scenario, tmp_path)
    assert failed == [], stderr
    assert canonical(printed) == canonical(GOLDENS["scenarios"][scenario.name]["json"])


def test_the_markdown_report_names_each_metrics_file_it_could_not_read(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "test_missing_cache")
    build(scenario, tmp_path)
    result = CliRunner().invoke(main, ["report", "--repo", str(tmp_path), "--base", "HEAD~1"])
    assert result.exit_code == 0, result.output
    assert (
        "> At the head (" in result.stdout
        and "): metrics2.yaml is in DVC's cache, not in git, and the local DVC cache has no "
        "copy of it (md5 "
        in result.stdout
    )
