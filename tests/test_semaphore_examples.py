"""The example Semaphore pipelines in deploy/semaphore/ are pipelines Semaphore would accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "deploy" / "semaphore"
PIPELINES = sorted(EXAMPLES.glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name}: not a mapping"
    return document


def commands(pipeline: dict[str, Any]) -> list[str]:
    return [
        command
        for block in pipeline["blocks"]
        for job in block["task"]["jobs"]
        for command in job["commands"]
    ]


def test_the_example_pipelines_are_there() -> None:
    # mlgate-ci.yml: the `mlgate ci` block, tested with the command in tests/test_ci_step.py.
    assert [p.name for p in PIPELINES] == ["deploy.yml", "evaluate.yml", "mlgate-ci.yml"]


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_an_example_has_the_keys_semaphore_requires(path: Path) -> None:
    # docs.semaphore.io/reference/pipeline-yaml: version, agent.machine, blocks[].task.jobs.
    pipeline = load(path)
    assert pipeline["version"] == "v1.0"
    assert {"type", "os_image"} <= pipeline["agent"]["machine"].keys()
    assert pipeline["blocks"]
    for block in pipeline["blocks"]:
        assert block["name"]
        for job in block["task"]["jobs"]:
            assert job["name"] and job["commands"]
    for promotion in pipeline.get("promotions", []):
        # A promotion's pipeline_file is relative to the pipeline that declares it.
        assert (path.parent / promotion["pipeline_file"]).is_file(), promotion


def test_evaluate_promotes_to_deploy_under_the_name_mlgate_triggers() -> None:
    promotions = load(EXAMPLES / "evaluate.yml")["promotions"]
    assert promotions == [{"name": "Deploy to production", "pipeline_file": "deploy.yml"}]


def test_evaluate_uses_the_retrain_parameters() -> None:
    text = " ".join(commands(load(EXAMPLES / "evaluate.yml")))
    assert "$MLGATE_PARAM_" in text or "${MLGATE_PARAM_" in text
    assert "dvc exp run" in text


def test_evaluate_uploads_metrics_with_the_readme_command() -> None:
    readme = (ROOT / "docs" / "semaphore.md").read_text()
    block = re.search(r"```sh\n(curl -fsS [^`]*?/api/v1/metrics[^`]*?)\n```", readme)
    assert block is not None, "docs/semaphore.md: no curl line under Connecting Semaphore"
    documented = re.sub(r"\s*\\\n\s*", " ", block.group(1)).strip()
    assert documented in commands(load(EXAMPLES / "evaluate.yml"))
