"""The `/retrain` matrix (words, quoting, validation, the cap) and the candidates' leaderboard."""

from __future__ import annotations

import json
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import RetrainRequest, parse, parse_retrain
from bot.core.config import Parameter, parse_config
from bot.core.experiment_matrix import (
    LEADERBOARD_JSON_LIMIT,
    Candidate,
    CandidateOutcome,
    Matrix,
    build_matrix,
    leaderboard_json,
    rank_candidates,
    rank_direction,
    rank_value,
    render_leaderboard,
    split_words,
)
from bot.core.gates import Gate, GateResult
from bot.core.metrics import Stat

SPECS = (
    Parameter("lr", "float", min=0, max=1, default="0.1"),
    Parameter("model", "string", choices=("xgboost", "random_forest"), default="xgboost"),
    Parameter("epochs", "int", min=1, max=500),
    Parameter("note", "string"),
)


def matrix(text: str, cap: int = 8) -> Matrix:
    built = build_matrix(text, SPECS, cap)
    assert isinstance(built, Matrix), built
    return built


def refused(text: str, cap: int = 8) -> list[str]:
    built = build_matrix(text, SPECS, cap)
    assert isinstance(built, list), built
    return built


# --- words -----------------------------------------------------------------------------------


def test_words_split_like_shlex_and_mark_unquoted_commas() -> None:
    words = split_words("""lr=0.1,0.01 note="a, b",c 'x,y' z\\,w""")
    assert not isinstance(words, str)
    assert [w.items for w in words] == [("lr=0.1", "0.01"), ("note=a, b", "c"), ("x,y",), ("z,w",)]
    assert [w.text for w in words] == shlex.split("""lr=0.1,0.01 note="a, b",c 'x,y' z\\,w""")


def test_an_empty_quoted_value_is_marked_as_quoted() -> None:
    words = split_words('note=a,""')
    assert not isinstance(words, str)
    assert words[0].items == ("note=a", "")
    assert words[0].quoted == (False, True)


def test_unclosed_quotes_and_trailing_backslash_are_problems() -> None:
    assert split_words('note="a,b') == 'a quote is not closed; close it, e.g. name="two words"'
    assert split_words("note='a") == 'a quote is not closed; close it, e.g. name="two words"'
    assert split_words('note="a\\') == 'a quote is not closed; close it, e.g. name="two words"'
    assert split_words("note=a\\") == "the line ends with a \\ that escapes nothing; remove it"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab=,'\"\\ \t\n", max_size=30))
def test_words_are_exactly_shlex_words(text: str) -> None:
    try:
        expected: list[str] | None = shlex.split(text)
    except ValueError:
        expected = None
    words = split_words(text)
    if expected is None:
        assert isinstance(words, str)
    else:
        assert not isinstance(words, str)
        assert [w.text for w in words] == expected


# --- candidates ------------------------------------------------------------------------------


def test_the_cartesian_product_in_a_stable_order() -> None:
    built = matrix("lr=0.1,0.01 model=xgboost,random_forest")
    assert [c.name for c in built.candidates] == ["c1", "c2", "c3", "c4"]
    assert [c.varied for c in built.candidates] == [
        (("lr", "0.1"), ("model", "xgboost")),
        (("lr", "0.1"), ("model", "random_forest")),
        (("lr", "0.01"), ("model", "xgboost")),
        (("lr", "0.01"), ("model", "random_forest")),
    ]
    assert built.keys == ("lr", "model")


def test_each_candidate_has_every_parameter_with_defaults_in_declaration_order() -> None:
    built = matrix("model=random_forest,xgboost epochs=5")
    assert [dict(c.parameters) for c in built.candidates] == [
        {"lr": "0.1", "model": "random_forest", "epochs": "5"},
        {"lr": "0.1", "model": "xgboost", "epochs": "5"},
    ]
    # Only what differs between candidates is shown on the leaderboard.
    assert [c.varied for c in built.candidates] == [
        (("model", "random_forest"),),
        (("model", "xgboost"),),
    ]


def test_no_arguments_is_one_candidate_with_the_defaults() -> None:
    built = matrix("")
    assert built.candidates == (Candidate(1, {"lr": "0.1", "model": "xgboost"}, ()),)


def test_values_are_canonical_strings_of_their_type() -> None:
    built = matrix("lr=.5,1e-2 epochs=007")
    assert [dict(c.parameters) for c in built.candidates] == [
        {"lr": "0.5", "model": "xgboost", "epochs": "7"},
        {"lr": "0.01", "model": "xgboost", "epochs": "7"},
    ]


def test_a_quoted_comma_is_part_of_the_value() -> None:
    built = matrix('note="a,b",c')
    assert [c.parameters["note"] for c in built.candidates] == ["a,b", "c"]
    assert [c.parameters["note"] for c in matrix("note='x, y'").candidates] == ["x, y"]
    assert [c.parameters["note"] for c in matrix("note=x\\,y").candidates] == ["x,y"]
    assert [c.parameters["note"] for c in matrix('note=a,""').candidates] == ["a", ""]


def test_the_matrix_reads_the_commands_raw_text_not_its_shlex_words() -> None:
    command = parse('/retrain note="a,b",c model=xgboost')[0]
    built = matrix(command.text)
    assert [c.parameters["note"] for c in built.candidates] == ["a,b", "c"]
    # shlex has already dropped the quotes: the words alone cannot tell the comma apart.
    assert command.args == ("note=a,b,c", "model=xgboost")


def test_the_cap_refuses_with_the_count() -> None:
    assert refused("lr=0.1,0.01 model=xgboost,random_forest", cap=3) == [
        "4 candidates > max_candidates 3; give fewer values, or raise retrain.max_candidates"
        " (at most 64)"
    ]
    assert len(matrix("lr=0.1,0.01 model=xgboost,random_forest", cap=4).candidates) == 4


def test_a_huge_product_is_refused_without_being_built() -> None:
    values = ",".join(f"0.{i:03}" for i in range(1, 101))
    text = f"lr={values} note={','.join(str(i) for i in range(100))} model=xgboost,random_forest"
    assert refused(text, cap=64)[0].startswith("20000 candidates > max_candidates 64")


def test_each_value_is_validated_and_every_problem_reported() -> None:
    assert refused("lr=0.1,2,x model=xgboost,svm") == [
        "lr=2: above the maximum; expected a number from 0 to 1",
        "lr=x: not a number; expected a number from 0 to 1",
        "model=svm: not one of the choices; expected one of xgboost, random_forest",
    ]


def test_unknown_parameter_is_named_once() -> None:
    assert refused("lrr=0.1,0.2 model=xgboost,random_forest") == [
        'unknown parameter "lrr"; /retrain accepts lr, model, epochs, note (did you mean "lr"?)'
    ]


def test_missing_required_parameter_is_named_once() -> None:
    specs = (Parameter("seed", "int", required=True), Parameter("lr", "float"))
    assert build_matrix("lr=0.1,0.2", specs, 8) == [
        "missing required parameter seed; expected seed=<value> with an integer"
    ]


def test_the_same_value_twice_is_refused() -> None:
    assert refused("lr=0.1,0.10") == ["lr=0.10 is the same value as lr=0.1; give each value once"]
    assert refused("model=xgboost,xgboost") == [
        "model=xgboost is the same value as model=xgboost; give each value once"
    ]


def test_a_parameter_given_twice_is_refused() -> None:
    assert refused("lr=0.1 lr=0.2") == [
        'lr is given 2 times ("lr=0.1", "lr=0.2"); give it once, with its values separated by'
        " commas"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lr=0.1,", 'lr has an empty value in "lr=0.1,"; remove the extra comma'),
        ("lr=0.1,,0.2", 'lr has an empty value in "lr=0.1,,0.2"'),
        ("xgboost", '"xgboost" is not name=value; write name=value1,value2'),
        ("a,lr=0.1", '"a,lr=0.1" has a comma before the =; write name=value1,value2'),
        ("=0.1", '"=0.1" has no parameter name before the ='),
        ('note="a', "a quote is not closed"),
    ],
)
def test_malformed_words_are_refused(text: str, problem: str) -> None:
    found = refused(text)
    assert found[0].startswith(problem), found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["lr", "model", "epochs", "note", "seed"]),
            st.sampled_from(["0.5", "2", "xgboost", "svm", "10", "", "a b", "1e-3"]),
        ),
        max_size=4,
    )
)
def test_without_commas_a_matrix_of_one_is_what_parse_retrain_gives(
    pairs: list[tuple[str, str]],
) -> None:
    text = " ".join(shlex.quote(f"{key}={value}") for key, value in pairs)
    single = parse_retrain(shlex.split(text), SPECS)
    built = build_matrix(text, SPECS, 8)
    if isinstance(single, RetrainRequest):
        assert isinstance(built, Matrix), built
        assert [dict(c.parameters) for c in built.candidates] == [dict(single.parameters)]
    else:
        assert isinstance(built, list)


# --- leaderboard -----------------------------------------------------------------------------

ACCURACY = Gate("accuracy", min=0.8)
LOSS = Gate("loss", "lower", max=1.0)
FOUR = matrix("lr=0.1,0.01 model=xgboost,random_forest").candidates


def passed(metric: str = "accuracy") -> tuple[GateResult, ...]:
    return (GateResult(metric, "metrics.json", True, "ok", ACCURACY),)


def failed(metric: str = "accuracy") -> tuple[GateResult, ...]:
    return (
        GateResult(metric, "metrics.json", False, "0.7 < min 0.8", ACCURACY),
        GateResult("loss", "metrics.json", True, "ok", LOSS),
    )


def board() -> list[CandidateOutcome]:
    return [
        CandidateOutcome(FOUR[0], "passed", 0.91, 0.004, passed()),
        CandidateOutcome(FOUR[1], "failed", 0.7, None, failed()),
        CandidateOutcome(FOUR[2], "passed", 0.93, 0.01, passed()),
        CandidateOutcome(FOUR[3], "running"),
    ]


def test_ranked_best_first_then_failed_then_running() -> None:
    rows = rank_candidates(board(), "higher")
    assert [(r.outcome.candidate.name, r.rank, r.best) for r in rows] == [
        ("c3", 1, True),
        ("c1", 2, False),
        ("c2", None, False),
        ("c4", None, False),
    ]


def test_lower_is_better_reverses_the_order() -> None:
    outcomes = [
        CandidateOutcome(FOUR[0], "passed", 0.3),
        CandidateOutcome(FOUR[1], "passed", 0.1),
        CandidateOutcome(FOUR[2], "passed", 0.2),
    ]
    rows = rank_candidates(outcomes, "lower")
    assert [r.outcome.candidate.name for r in rows] == ["c2", "c3", "c1"]


def test_ties_go_to_the_lower_candidate_number_and_only_one_is_starred() -> None:
    outcomes = [
        CandidateOutcome(FOUR[3], "passed", 0.9),
        CandidateOutcome(FOUR[1], "passed", 0.9),
        CandidateOutcome(FOUR[2], "passed", 0.8),
        CandidateOutcome(FOUR[0], "passed", 0.9),
    ]
    rows = rank_candidates(outcomes, "higher")
    assert [(r.outcome.candidate.name, r.rank, r.best) for r in rows] == [
        ("c1", 1, True),
        ("c2", 2, False),
        ("c4", 3, False),
        ("c3", 4, False),
    ]


def test_unranked_groups_keep_candidate_order() -> None:
    outcomes = [
        CandidateOutcome(FOUR[3], "superseded", 0.99),
        CandidateOutcome(FOUR[2], "running"),
        CandidateOutcome(FOUR[1], "failed", 0.99),
        CandidateOutcome(FOUR[0], "passed", None),  # finished, but without the metric
    ]
    rows = rank_candidates(outcomes, "higher")
    assert [(r.outcome.candidate.name, r.rank) for r in rows] == [
        ("c1", None),
        ("c2", None),
        ("c3", None),
        ("c4", None),
    ]
    assert not any(r.best for r in rows)


def test_a_nan_value_is_not_ranked() -> None:
    outcomes = [
        CandidateOutcome(FOUR[0], "passed", float("nan")),
        CandidateOutcome(FOUR[1], "passed", 0.5),
    ]
    rows = rank_candidates(outcomes, "higher")
    assert [(r.outcome.candidate.name, r.rank) for r in rows] == [("c2", 1), ("c1", None)]


def test_rank_direction_follows_the_gate() -> None:
    gates = (ACCURACY, LOSS, Gate("eval.json:auc", "lower", max=1))
    assert rank_direction(gates, "accuracy") == "higher"
    assert rank_direction(gates, "loss") == "lower"
    assert rank_direction(gates, "auc") == "lower"
    assert rank_direction(gates, "f1") == "higher"
    config = parse_config("gates:\n  loss: {direction: lower, max: 1}\n")
    rank_by = config.rank_metric()
    assert rank_by == "loss"
    assert rank_direction(config.gates, rank_by) == "lower"


def test_leaderboard_markdown() -> None:
    assert render_leaderboard(board(), "accuracy", "higher") == (
        "#### Leaderboard: 4 candidates by `accuracy` (higher is better)\n"
        "\n"
        "| | Candidate | Parameters | `accuracy` | Gates | Status |\n"
        "|---|---|---|---|---|---|\n"
        "| ★ | c3 | `lr=0.01` `model=xgboost` | 0.93 ± 0.01 | ✅ 1 passed | passed |\n"
        "|  | c1 | `lr=0.1` `model=xgboost` | 0.91 ± 0.004 | ✅ 1 passed | passed |\n"
        "|  | c2 | `lr=0.1` `model=random_forest` | 0.7 | ❌ 1 of 2 failed: `accuracy`"
        " | failed |\n"
        "|  | c4 | `lr=0.01` `model=random_forest` | — | — | running |\n"
        "\n"
        "`/promote c3` commits the outputs of c3 to this branch.\n"
    )


def test_leaderboard_without_a_ranked_candidate_has_no_star_and_no_promote_line() -> None:
    outcomes = [CandidateOutcome(FOUR[0], "running"), CandidateOutcome(FOUR[1], "failed")]
    text = render_leaderboard(outcomes, "accuracy", "higher")
    assert "★" not in text
    assert "/promote" not in text
    assert "| no gates | failed |" in text


def test_leaderboard_without_a_rank_by_metric_says_how_to_set_one() -> None:
    text = render_leaderboard([CandidateOutcome(FOUR[0], "running")], None, "higher")
    assert text.startswith(
        "#### Leaderboard: 1 candidate (no rank_by metric: set retrain.rank_by or a gate)\n"
    )


def test_many_failed_gates_are_counted_beyond_two_names() -> None:
    results = tuple(
        GateResult(f"m{i}", "metrics.json", False, "x", Gate(f"m{i}", min=1)) for i in range(4)
    )
    text = render_leaderboard(
        [CandidateOutcome(FOUR[0], "failed", 0.5, None, results)], "a", "higher"
    )
    assert "❌ 4 of 4 failed: `m0`, `m1` +2 |" in text


def test_repository_text_stays_inside_code_spans() -> None:
    hostile = Candidate(
        1, {"note": "x` @admin | <img src=x> ``"}, (("note", "x` @admin | <img src=x> ``"),)
    )
    text = render_leaderboard([CandidateOutcome(hostile, "passed", 1.0)], "acc|`x", "higher")
    row = text.splitlines()[4]
    assert row == (
        "| ★ | c1 | ``` note=x` @admin \\| <img src=x> `` ``` | 1.0 | no gates | passed |"
    )
    assert "| ``acc\\|`x`` |" in text.splitlines()[2]


def test_leaderboard_json_for_the_data_block() -> None:
    data = leaderboard_json(board(), "accuracy", "higher")
    assert json.loads(json.dumps(data)) == data
    assert data["rank_by"] == "accuracy"
    assert data["direction"] == "higher"
    assert data["candidates"][0] == {
        "candidate": "c3",
        "rank": 1,
        "best": True,
        "status": "passed",
        "parameters": {"lr": "0.01", "model": "xgboost"},
        "varied": {"lr": "0.01", "model": "xgboost"},
        "value": 0.93,
        "spread": 0.01,
        "gates": "passed",
        "failed_gates": [],
        "reason": None,
    }
    assert [(c["candidate"], c["gates"], c["failed_gates"]) for c in data["candidates"][2:]] == [
        ("c2", "failed", ["accuracy"]),
        ("c4", None, []),
    ]


def test_leaderboard_json_has_no_nan() -> None:
    data = leaderboard_json([CandidateOutcome(FOUR[0], "passed", float("nan"))], "a", "higher")
    assert data["candidates"][0]["value"] is None
    json.dumps(data, allow_nan=False)


def test_a_failed_run_shows_its_reason_escaped_and_queued_ones_follow_running_ones() -> None:
    outcomes = [
        CandidateOutcome(FOUR[0], "queued"),
        CandidateOutcome(FOUR[1], "failed", reason="`python3 train.py` exited with 3 | @team"),
        CandidateOutcome(FOUR[2], "running"),
        CandidateOutcome(FOUR[3], "passed", 0.9),
    ]
    rows = rank_candidates(outcomes, "higher")
    assert [(r.outcome.candidate.name, r.rank) for r in rows] == [
        ("c4", 1),
        ("c2", None),
        ("c3", None),
        ("c1", None),
    ]
    text = render_leaderboard(outcomes, "accuracy", "higher")
    failed = next(line for line in text.splitlines() if "| c2 |" in line)
    # The reason is repository text: a code span, its `|` escaped so the row stays one row.
    assert failed.endswith("| failed: `` `python3 train.py` exited with 3 \\| @team `` |")
    assert leaderboard_json(outcomes, "accuracy", "higher")["candidates"][1]["reason"] == (
        "`python3 train.py` exited with 3 | @team"
    )


def test_the_leaderboard_data_stays_small_with_many_candidates_of_long_values() -> None:
    long = "x" * 5_000
    many = [
        CandidateOutcome(
            Candidate(n, {"note": long, "seed": str(n)}, (("seed", str(n)),)), "passed", 0.5
        )
        for n in range(1, 65)
    ]
    data = leaderboard_json(many, "accuracy", "higher")
    assert len(json.dumps(data, ensure_ascii=False)) <= LEADERBOARD_JSON_LIMIT
    assert data["parameters_left_out"] is True
    assert all("parameters" not in c for c in data["candidates"])
    assert data["candidates"][0]["varied"] == {"seed": "1"}
    few = leaderboard_json(many[:2], "accuracy", "higher")
    assert "parameters_left_out" not in few
    assert few["candidates"][0]["parameters"] == {"note": "x" * 200, "seed": "1"}


def test_rank_value_reads_the_metric_by_name_or_path_and_its_spread() -> None:
    new = {"metrics.json": {"accuracy": 0.9, "name": "best", "ok": True}}
    noise = {"metrics.json:accuracy": Stat(0.9, 0.01, 3)}
    assert rank_value(new, noise, "accuracy") == (0.9, 0.01)
    assert rank_value(new, None, "metrics.json:accuracy") == (0.9, None)
    assert rank_value(new, noise, "name") == (None, None)  # not a number
    assert rank_value(new, noise, "ok") == (None, None)  # a bool is no score
    assert rank_value(new, noise, "loss") == (None, None)
    assert rank_value(new, noise, None) == (None, None)
