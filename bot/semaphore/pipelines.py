"""Semaphore pipelines as mlgate reads them: run parameters, done notices and their failures."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.config import PARAM_PREFIX
from bot.semaphore.semaphore_client import Pipeline

# Results a done pipeline can have besides "passed" (docs: passed, failed, stopped, canceled).
PASSED = "passed"
# How a job reports its metrics (docs/semaphore.md); `o/r` is filled in.
UPLOAD_COMMAND = (
    'curl -fsS -H "Authorization: Bearer $MLGATE_TOKEN" --data-binary @metrics.json '
    '"$MLGATE_PUBLIC_URL/api/v1/metrics?repo={repo}&sha=$MLGATE_SHA&run=$MLGATE_RUN_ID"'
)


def workflow_parameters(
    params: Mapping[str, str], *, run_id: str, repo: str, pr: int | None, sha: str
) -> dict[str, str]:
    """Parameters reach runs as MLGATE_PARAM_<NAME> (upper-cased), one per parameter,
    and MLGATE_RUN_ID, MLGATE_REPO, MLGATE_PR, MLGATE_SHA; Semaphore makes them env vars."""
    values = {PARAM_PREFIX + name.upper(): str(value) for name, value in params.items()}
    return values | {
        "MLGATE_RUN_ID": run_id,
        "MLGATE_REPO": repo,
        "MLGATE_PR": "" if pr is None else str(pr),
        "MLGATE_SHA": sha,
    }


@dataclass(frozen=True)
class PipelineDone:
    """The facts of a pipeline-done notification that mlgate acts on."""

    pipeline_id: str
    workflow_id: str
    result: str
    result_reason: str
    pipeline_file: str
    project_id: str
    organization: str
    repo: str | None
    # For PR pipelines only. `revision.commit_sha` is the merge commit Semaphore built; the
    # PR head is `pull_request.head_sha`, and the number comes as a string.
    pr_number: int | None
    head_sha: str | None
    failed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The commit Semaphore built: for branch pipelines the pushed commit.
    commit_sha: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == PASSED


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pipeline_path(working_directory: str, yaml_file_name: str) -> str:
    """The pipeline file as the repository names it (`.semaphore/evaluate.yml`)."""
    return posixpath.normpath(posixpath.join(working_directory.strip("/") or ".", yaml_file_name))


def same_file(a: str, b: str) -> bool:
    return posixpath.normpath(a.strip().lstrip("/")) == posixpath.normpath(b.strip().lstrip("/"))


def parse_pipeline_done(payload: Mapping[str, Any]) -> PipelineDone | None:
    """The notification of a done pipeline, or None for anything else."""
    pipeline, workflow = _mapping(payload.get("pipeline")), _mapping(payload.get("workflow"))
    pipeline_id, workflow_id = pipeline.get("id"), workflow.get("id")
    if pipeline.get("state") != "done" or not isinstance(pipeline_id, str) or not pipeline_id:
        return None
    revision = _mapping(payload.get("revision"))
    pull = _mapping(revision.get("pull_request"))
    number = str(pull.get("number") or "")
    head = pull.get("head_sha")
    commit = revision.get("commit_sha")
    repository = _mapping(payload.get("repository"))
    return PipelineDone(
        pipeline_id=pipeline_id,
        workflow_id=str(workflow_id or ""),
        result=str(pipeline.get("result") or "").lower(),
        result_reason=str(pipeline.get("result_reason") or "").lower(),
        pipeline_file=pipeline_path(
            str(pipeline.get("working_directory") or ""), str(pipeline.get("yaml_file_name") or "")
        ),
        project_id=str(_mapping(payload.get("project")).get("id") or ""),
        organization=str(_mapping(payload.get("organization")).get("name") or ""),
        repo=str(repository["slug"]) if isinstance(repository.get("slug"), str) else None,
        pr_number=int(number) if number.isdigit() else None,
        head_sha=head.lower() if isinstance(head, str) and head else None,
        failed=_failed_blocks(payload.get("blocks")),
        commit_sha=commit.lower() if isinstance(commit, str) and commit else None,
    )


def _failed_blocks(blocks: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(block, failed jobs) of the blocks that did not pass, as the notification lists them."""
    found = []
    for block in blocks if isinstance(blocks, Sequence) else ():
        block = _mapping(block)
        jobs = [_mapping(j) for j in block.get("jobs") or ()]
        failed = tuple(str(j.get("name")) for j in jobs if str(j.get("result")).lower() == "failed")
        if str(block.get("result") or "").lower() not in ("", PASSED) or failed:
            found.append((str(block.get("name") or "?"), failed))
    return tuple(found)


def failed_from_pipeline(pipeline: Pipeline) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(block, failed jobs) from GET /pipelines/:id?detailed=true."""
    failed_jobs = set(pipeline.failed_jobs())
    found = []
    for block in pipeline.blocks:
        jobs = tuple(job.name for job in block.jobs if job.name in failed_jobs)
        if (block.result or PASSED) != PASSED or jobs:
            found.append((block.name, jobs))
    return tuple(found)


def describe_failure(result: str, failed: Sequence[tuple[str, Sequence[str]]]) -> str:
    """One line for the check title and the comment's verdict."""
    listed = "; ".join(
        f"block {block}: " + (", ".join(jobs) if jobs else "no job failed")
        for block, jobs in failed
    )
    return f"the Semaphore pipeline {result or 'ended'}" + (f" ({listed})" if listed else "")


def fallback_workflow_url(organization: str, workflow_id: str) -> str | None:
    """The workflow page when no API URL is configured: organizations live at
    https://<name>.semaphoreci.com (docs.semaphore.io)."""
    if not organization or not workflow_id:
        return None
    return f"https://{organization}.semaphoreci.com/workflows/{workflow_id}"
