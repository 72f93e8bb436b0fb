"""The `/retrain` experiment matrix's runs: one candidate at a time on `runs`, each queued at
the back when the one before ends, so that other PRs' evaluations take turns with them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict

import redis

from bot.core.evaluation_result import Evaluation
from bot.core.experiment_matrix import Matrix, rank_value
from bot.core.pr_facts import PullRequest, Retrain
from bot.runs.evaluation import Evaluator
from bot.runs.publication import DONE, Publication, QueuedRun, Reaction
from bot.state import candidates, queues
from bot.state.candidates import (
    MAX_CANDIDATE_OUTPUT_BYTES,
    CandidateOutputs,
    CandidateResult,
    MatrixRecord,
)
from bot.state.pr_heads import is_current

log = logging.getLogger(__name__)

CANDIDATE = "candidate"  # the kind of a candidate's run; its matrix and number follow
# Outcomes of a candidate's run, for logs and tests.
FINISHED, SUPERSEDED = "candidate-finished", "candidate-superseded"


def start(
    conn: redis.Redis,
    pr: PullRequest,
    installation_id: int,
    matrix: Matrix,
    user: str,
    comment_id: int | None,
) -> Publication:
    """Record `matrix` as the PR's (every candidate queued) and queue c1 alone."""
    record = MatrixRecord(uuid.uuid4().hex[:12], pr.head_sha, user, comment_id, matrix.as_json())
    candidates.record_matrix(conn, pr.repo, pr.number, record)
    return Publication(pr.repo, pr.number, runs=(candidate_run(pr, installation_id, record, 1),))


def candidate_run(
    pr: PullRequest, installation_id: int, record: MatrixRecord, number: int
) -> QueuedRun:
    """The `runs` job of candidate `number`: an evaluation of the head after a retrain with
    its parameters (workers.jobs.evaluate_pull_request), marked as that candidate."""
    parameters = dict(record.candidates[number - 1]["parameters"])
    job = {
        "pr": asdict(pr),
        "installation_id": installation_id,
        "forced": True,
        "retrain": parameters,
        "requested_by": record.user,
        "candidate": {"matrix": record.id, "number": number},
    }
    kind = f"{CANDIDATE}-{record.id}-{number}"
    return QueuedRun(kind, queues.EVALUATE_PULL_REQUEST, pr.head_sha, job)


def run_candidate(
    evaluator: Evaluator,
    pr: PullRequest,
    installation_id: int,
    matrix_id: str,
    number: int,
    *,
    trusted: Callable[[], bool],
) -> Publication:
    """Run candidate `number` of the PR's matrix `matrix_id` and record how it did; the
    report's leaderboard shows it, and the next candidate is queued at the back of `runs`.

    A candidate of a head that is no longer the PR's (a push), or of a matrix a newer
    `/retrain` replaced, runs nothing and queues nothing: the leaderboard shows it superseded.
    """
    conn = evaluator.conn
    record = candidates.matrix(conn, pr.repo, pr.number)
    if record is None or record.id != matrix_id or record.head_sha != pr.head_sha:
        return Publication(pr.repo, pr.number, SUPERSEDED)
    if not is_current(conn, pr.repo, pr.number, pr.head_sha):
        return Publication(pr.repo, pr.number, SUPERSEDED)
    candidates.set_result(conn, pr.repo, pr.number, matrix_id, number, CandidateResult("running"))
    parameters = dict(record.candidates[number - 1]["parameters"])
    retrain = Retrain(parameters, record.user)
    evaluation, config, capture = evaluator.evaluate_candidate(pr, retrain, trusted=trusted)
    rank_by = config.rank_metric() if config is not None else None
    result = result_of(evaluation, capture.problem, rank_by)
    if result.reason is None:
        size = candidates.output_size(capture.changes)
        if size > MAX_CANDIDATE_OUTPUT_BYTES:
            result = CandidateResult(
                "failed",
                reason=(
                    f"its changed outputs are {size:,} bytes, over the "
                    f"{MAX_CANDIDATE_OUTPUT_BYTES:,} kept per candidate; track large files "
                    "with DVC and list their pointers in retrain.outputs"
                ),
            )
        else:
            outputs = CandidateOutputs(capture.base_tree, capture.changes)
            candidates.save_outputs(conn, pr.repo, pr.number, matrix_id, number, outputs)
    candidates.set_result(conn, pr.repo, pr.number, matrix_id, number, result)
    log.info(
        "candidate c%d: %s",
        number,
        result.status,
        extra={"repo": pr.repo, "pr": pr.number, "sha": pr.head_sha},
    )
    return shown_and_next(evaluator, pr, installation_id, record)


def abandon(
    evaluator: Evaluator,
    pr: PullRequest,
    installation_id: int,
    matrix_id: str,
    number: int,
    why: str,
) -> Publication:
    """A candidate's job failed on the way (GitHub down, a worker error): it is failed with
    `why`, and the matrix goes on with the next one."""
    record = candidates.matrix(evaluator.conn, pr.repo, pr.number)
    if record is None or record.id != matrix_id:
        return Publication(pr.repo, pr.number, SUPERSEDED)
    failed = CandidateResult("failed", reason=why)
    candidates.set_result(evaluator.conn, pr.repo, pr.number, matrix_id, number, failed)
    return shown_and_next(evaluator, pr, installation_id, record)


def result_of(evaluation: Evaluation, problem: str | None, rank_by: str | None) -> CandidateResult:
    """A finished candidate: `failed` with a reason when its run gave no result, else its
    rank_by value and gates, `passed` when no gate failed."""
    if evaluation.error is not None:
        return CandidateResult("failed", reason=evaluation.error)
    if problem is not None:
        return CandidateResult("failed", reason=problem)
    value, spread = rank_value(evaluation.new, evaluation.noise, rank_by)
    gates = [{"metric": g.metric, "passed": g.passed, "reason": g.reason} for g in evaluation.gates]
    status = "passed" if all(g.passed for g in evaluation.gates) else "failed"
    return CandidateResult(status, value, spread, gates)


def shown_and_next(
    evaluator: Evaluator, pr: PullRequest, installation_id: int, record: MatrixRecord
) -> Publication:
    """The report again with the leaderboard as it stands, and the next queued candidate at
    the back of `runs`; the last one to finish marks the command 🚀."""
    conn = evaluator.conn
    found = candidates.results(conn, pr.repo, pr.number, record.id)
    shown = Publication(pr.repo, pr.number, FINISHED)
    again = evaluator.republish(pr)
    if again is not None and again.comment is not None:
        # Only the comment: mlgate/quality stays the head's own evaluation.
        shown = shown.then(Publication(pr.repo, pr.number, FINISHED, comment=again.comment))
    waiting = sorted(n for n, r in found.items() if r.status == "queued")
    if waiting and is_current(conn, pr.repo, pr.number, pr.head_sha):
        run = candidate_run(pr, installation_id, record, waiting[0])
        return shown.then(Publication(pr.repo, pr.number, FINISHED, runs=(run,)))
    if not waiting and record.comment_id is not None:
        done = Reaction(record.comment_id, DONE)
        shown = shown.then(Publication(pr.repo, pr.number, FINISHED, reactions=(done,)))
    return shown
