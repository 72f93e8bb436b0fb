"""The PR's `/retrain` matrix as its report shows it: each candidate's state read from Redis."""

from __future__ import annotations

from dataclasses import replace

import redis

from bot.core.config import RepoConfig
from bot.core.evaluation_result import Evaluation
from bot.core.experiment_matrix import (
    Candidate,
    CandidateOutcome,
    CandidateStatus,
    leaderboard_json,
    rank_direction,
    render_leaderboard,
)
from bot.core.gates import Gate, GateResult
from bot.core.pr_facts import PullRequest
from bot.state import candidates
from bot.state.candidates import CandidateResult, MatrixRecord

STATUSES: tuple[CandidateStatus, ...] = ("passed", "failed", "running", "queued", "superseded")


def candidate_of(record: MatrixRecord, number: int) -> Candidate:
    shown = record.candidates[number - 1]
    return Candidate(number, dict(shown["parameters"]), tuple(dict(shown["varied"]).items()))


def outcome_of(
    candidate: Candidate, result: CandidateResult | None, current: bool
) -> CandidateOutcome:
    """How a stored result shows: every candidate of a matrix whose head is gone is
    superseded, whatever it found (its outputs were trained on older code)."""
    found = result or CandidateResult("queued")
    status: CandidateStatus = "superseded"
    if current:
        status = next((s for s in STATUSES if s == found.status), "queued")
    gates = tuple(
        GateResult(str(g["metric"]), None, bool(g["passed"]), str(g["reason"]), Gate(g["metric"]))
        for g in found.gates
    )
    return CandidateOutcome(candidate, status, found.value, found.spread, gates, found.reason)


def outcomes(
    conn: redis.Redis, pr: PullRequest
) -> tuple[MatrixRecord, list[CandidateOutcome]] | None:
    """The PR's matrix and where each candidate stands against `pr`'s head; None without one."""
    record = candidates.matrix(conn, pr.repo, pr.number)
    if record is None:
        return None
    found = candidates.results(conn, pr.repo, pr.number, record.id)
    current = record.head_sha == pr.head_sha
    shown = [
        outcome_of(candidate_of(record, n), found.get(n), current)
        for n in range(1, len(record.candidates) + 1)
    ]
    return record, shown


def with_board(
    conn: redis.Redis, pr: PullRequest, config: RepoConfig, evaluation: Evaluation
) -> Evaluation:
    """`evaluation` with the PR's leaderboard (rendered and as data), if the PR has a matrix."""
    found = outcomes(conn, pr)
    if found is None:
        return replace(evaluation, leaderboard="", leaderboard_data=None)
    record, shown = found
    rank_by = config.rank_metric()
    direction = rank_direction(config.gates, rank_by) if rank_by else "higher"
    text = render_leaderboard(shown, rank_by, direction)
    if record.head_sha != pr.head_sha:
        text += (
            f"\nThese candidates were trained on {record.head_sha[:7]}; the PR has moved on, so "
            "they are superseded. Comment `/retrain` again to train on the new head.\n"
        )
    data = leaderboard_json(shown, rank_by, direction) | {"head": record.head_sha}
    return replace(evaluation, leaderboard=text, leaderboard_data=data)
