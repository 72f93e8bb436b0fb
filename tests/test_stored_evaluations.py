"""Stored evaluations are JSON that reads back as the same Evaluation, nested types included."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import redis

from bot.core.dvc import DataChange, Output
from bot.core.evaluation_result import Baseline, Evaluation
from bot.core.gates import Gate, GateResult, Threshold
from bot.core.metrics import Stat
from bot.core.report import render_check_run, render_comment
from bot.state import stored_evaluations
from bot.state.stored_evaluations import from_json, to_json
from tests.test_report import data_and_trend, improving, irrelevant, regressing

REPO = "octo/model"


def overridden_error() -> Evaluation:
    return replace(regressing(), override="@ada: known drift", error="`python3 eval.py` exited 1")


EVALUATIONS = [improving(), regressing(), irrelevant(), data_and_trend(), overridden_error()]


@pytest.mark.parametrize("evaluation", EVALUATIONS)
def test_a_stored_evaluation_renders_exactly_as_the_one_published(evaluation: Evaluation) -> None:
    stored, neutral = from_json(to_json(evaluation, neutral=False))
    assert neutral is False
    assert render_comment(stored) == render_comment(evaluation)
    assert render_check_run(stored) == render_check_run(evaluation)
    # Sequences come back as tuples; from then on a round trip changes nothing at all.
    assert from_json(to_json(stored, neutral=True)) == (stored, True)


def test_nested_values_come_back_as_their_dataclasses() -> None:
    stored, _ = from_json(to_json(data_and_trend(), neutral=True))
    original = data_and_trend()
    gate = stored.gates[0]
    assert isinstance(gate, GateResult) and isinstance(gate.gate, Gate)
    assert gate == original.gates[0]
    assert isinstance(gate.gate.max_drop, Threshold)
    assert all(isinstance(c, DataChange) for c in stored.data_changes)
    assert [c.new for c in stored.data_changes] == [c.new for c in original.data_changes]
    assert any(isinstance(c.new, Output) for c in stored.data_changes)
    assert stored.noise is not None and stored.noise == original.noise
    assert isinstance(stored.noise["accuracy"], Stat)
    assert stored.trend == tuple(original.trend) and isinstance(stored.trend[0], Baseline)
    assert stored.new == original.new and stored.notes == tuple(original.notes)


def test_save_and_load_by_pr_head(redis_conn: redis.Redis) -> None:
    evaluation = improving()
    stored_evaluations.save(redis_conn, REPO, 7, evaluation.head_sha, evaluation, neutral=True)
    loaded = stored_evaluations.load(redis_conn, REPO, 7, evaluation.head_sha)
    assert loaded is not None and loaded[1] is True
    assert render_comment(loaded[0]) == render_comment(evaluation)
    assert stored_evaluations.load(redis_conn, REPO, 8, evaluation.head_sha) is None
    assert stored_evaluations.load(redis_conn, REPO, 7, "0" * 40) is None


def test_a_pickle_left_by_an_older_mlgate_is_not_read(redis_conn: redis.Redis) -> None:
    evaluation = improving()
    stored_evaluations.save(redis_conn, REPO, 7, evaluation.head_sha, evaluation, neutral=False)
    [stored_key] = redis_conn.keys("*evaluation*")
    redis_conn.set(stored_key, pickle.dumps((evaluation, False)))
    assert stored_evaluations.load(redis_conn, REPO, 7, evaluation.head_sha) is None
