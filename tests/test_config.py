"""`.github/mlgate.yml`: parsing, every kind of problem with its file:line, `/retrain` values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.config import (
    CONFIG_PATH,
    DEFAULT_MEMORY,
    DEFAULT_RETRAIN_OUTPUTS,
    Approvers,
    DeployConfig,
    EvaluateConfig,
    MetricsConfig,
    Parameter,
    RepoConfig,
    RetrainConfig,
    SemaphoreConfig,
    Triggers,
    default_config,
    describe_accepted,
    parse_config,
    parse_duration,
    parse_memory,
    validate_file,
    validate_parameters,
)
from bot.core.gates import Gate, Threshold
from bot.errors import ParameterError, RepoConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
F = CONFIG_PATH


def parse(text: str) -> RepoConfig:
    return parse_config(textwrap.dedent(text))


def problems(text: str, filename: str = CONFIG_PATH) -> list[str]:
    with pytest.raises(RepoConfigError) as caught:
        parse_config(textwrap.dedent(text), filename)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- defaults --------------------------------------------------------------------------------


def test_default_config_evaluates_data_code_and_params_changes_and_only_reports() -> None:
    config = default_config()
    assert config.version == 1
    assert config.triggers == Triggers(
        data=("**/*.dvc", "dvc.lock", "data/**"),
        code=("dvc.yaml", "params.yaml", "params.json", "*.py", "*.ipynb", "src/**"),
        drafts=False,
    )
    assert config.metrics == MetricsConfig(files=(), source="git")
    assert config.evaluate == EvaluateConfig(run=None, timeout=1800.0, repeats=1)
    assert config.retrain == RetrainConfig(runner="local", run=None, pipeline_file=None)
    assert config.semaphore == SemaphoreConfig(project_id=None, pipeline_file=None)
    assert config.gates == ()
    assert config.deploy == DeployConfig(
        promotion=None,
        run=None,
        approvers=Approvers(permission="maintain", users=(), teams=()),
        allow_self_approval=False,
        on="merge",
    )
    assert not config.deploy.enabled


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing configured yet\n", "~\n", "---\n"])
def test_empty_file_gives_defaults(text: str) -> None:
    assert parse_config(text) == default_config()


def test_missing_sections_take_defaults() -> None:
    config = parse("gates:\n  accuracy: {min: 0.9}\n")
    assert config == RepoConfig(gates=(Gate("accuracy", min=0.9),))


def test_section_left_empty_takes_defaults() -> None:
    assert parse("triggers:\nevaluate:\ndeploy:\n") == default_config()


def test_missing_keys_within_a_section_take_defaults() -> None:
    config = parse("triggers:\n  code: ['src/**']\nevaluate:\n  repeats: 3\n")
    assert config.triggers == Triggers(data=("**/*.dvc", "dvc.lock", "data/**"), code=("src/**",))
    assert config.evaluate == EvaluateConfig(run=None, timeout=1800.0, repeats=3)


def test_design_example_parses_into_expected_dataclasses() -> None:
    text = (FIXTURES / "design-example.yml").read_text()
    assert parse_config(text) == RepoConfig(
        version=1,
        triggers=Triggers(
            data=("**/*.dvc", "dvc.lock"), code=("src/**", "params.yaml", "dvc.yaml")
        ),
        metrics=MetricsConfig(files=("metrics.json",), source="git"),
        evaluate=EvaluateConfig(run=("dvc", "repro", "evaluate"), timeout=1800.0, repeats=1),
        retrain=RetrainConfig(
            runner="local",
            run=("dvc", "repro", "train"),
            pipeline_file=None,
            parameters=(
                Parameter(
                    "model", "string", choices=("xgboost", "random_forest"), default="xgboost"
                ),
                Parameter("epochs", "int", min=1, max=500),
            ),
        ),
        semaphore=SemaphoreConfig(
            project_id="7379341d-...", pipeline_file=".semaphore/evaluate.yml"
        ),
        gates=(
            Gate("accuracy", "higher", min=0.87, max_drop=Threshold(0.01)),
            Gate("loss", "lower", max_rise=Threshold(5.0, relative=True)),
        ),
        deploy=DeployConfig(
            promotion="Deploy to production",
            approvers=Approvers(permission="maintain"),
            allow_self_approval=False,
            on="merge",
        ),
    )


def test_filename_given_is_used_in_problems() -> None:
    assert problems("version: 2\n", "repo/mlgate.yml") == [
        "repo/mlgate.yml:1 version: expected 1 (the only version this mlgate understands), got 2"
    ]


# --- YAML itself -----------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_yaml_problem() -> None:
    assert problem("version: 1\ngates:\n  accuracy: min: 0.9\n") == (
        f"{F}:3 invalid YAML: mapping values are not allowed here"
    )


def test_unclosed_flow_mapping_is_a_syntax_error_with_yaml_context() -> None:
    assert problem("version: 1\ngates: {accuracy: {min: 0.9}\n") == (
        f"{F}:3 invalid YAML: while parsing a flow mapping,"
        " expected ',' or '}', but got '<stream end>'"
    )


def test_control_character_is_a_syntax_error_on_its_line() -> None:
    assert problem("version: 1\ntriggers: \x07\n") == (
        f"{F}:2 invalid YAML: special characters are not allowed (U+0007)"
    )


def test_several_documents_are_refused() -> None:
    assert problem("version: 1\n---\nversion: 1\n") == (
        f"{F}:2 invalid YAML: expected a single document in the stream, but found another document"
    )


def test_undefined_alias_is_a_syntax_error() -> None:
    assert problem("gates: *nowhere\n") == (f"{F}:1 invalid YAML: found undefined alias 'nowhere'")


def test_absurdly_nested_yaml_is_refused_not_crashed_on() -> None:
    assert problem("- " * 1000 + "x") == f"{F}:1 invalid YAML: nested too deeply"


@pytest.mark.parametrize(
    ("text", "got"),
    [("- version\n", "a list"), ("just text\n", '"just text"'), ("42\n", "42")],
)
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert problem(text) == (
        f"{F}:1 top level: expected a mapping of deploy, evaluate, gates, metrics, monitor,"
        f" retrain, semaphore, triggers, version, got {got}"
    )


# --- keys ------------------------------------------------------------------------------------


def test_unknown_key_lists_accepted_keys_and_suggests_the_closest() -> None:
    text = """\
        version: 1
        triggers:
          data: ["**/*.dvc"]
        gates:
          accuracy:
            mni: 0.9
        """
    assert problem(text) == (
        f"{F}:6 gates.accuracy.mni: unknown key; expected one of direction, max, max_drop,"
        ' max_rise, min (did you mean "min"?)'
    )


def test_unknown_top_level_key_suggests_the_section() -> None:
    assert problem("gate:\n  accuracy: {min: 1}\n") == (
        f"{F}:1 gate: unknown key; expected one of deploy, evaluate, gates, metrics, monitor,"
        ' retrain, semaphore, triggers, version (did you mean "gates"?)'
    )


def test_unknown_key_far_from_any_accepted_has_no_suggestion() -> None:
    assert problem("evaluate:\n  command: make eval\n") == (
        f"{F}:2 evaluate.command: unknown key; expected one of memory, network, repeats, run,"
        " timeout"
    )


def test_key_in_wrong_case_is_suggested_in_right_case() -> None:
    assert problem("metrics:\n  SOURCE: git\n") == (
        f'{F}:2 metrics.SOURCE: unknown key; expected one of files, source (did you mean "source"?)'
    )


def test_repeated_key_is_refused_naming_the_first() -> None:
    assert problem("evaluate:\n  repeats: 2\n  repeats: 3\n") == (
        f"{F}:3 evaluate.repeats: expected each key once, got it again (line 2)"
    )


def test_key_that_is_a_list_is_refused() -> None:
    assert problem("evaluate:\n  ? [a, b]\n  : 1\n") == (
        f"{F}:2 evaluate: expected a key name, got a list"
    )


def test_on_key_is_not_read_as_yaml_boolean() -> None:
    config = parse("deploy: {promotion: Production, on: approval}\n")
    assert config.deploy.on == "approval"


def test_merge_keys_are_applied_and_own_keys_win() -> None:
    config = parse(
        """\
        gates:
          accuracy: &strict {min: 0.9, max_drop: 0.01}
          f1:
            <<: *strict
            min: 0.8
        """
    )
    assert config.gates == (
        Gate("accuracy", min=0.9, max_drop=Threshold(0.01)),
        Gate("f1", min=0.8, max_drop=Threshold(0.01)),
    )


def test_merges_of_merges_are_resolved_once_not_exponentially() -> None:
    # Each level merges the previous one ten times: 10**25 pairs if expanded naively.
    levels = ["gates:", "  g0: &g0 {min: 1}"]
    for level in range(1, 26):
        aliases = ", ".join([f"*g{level - 1}"] * 10)
        levels.append(f"  g{level}: &g{level} {{<<: [{aliases}]}}")
    config = parse_config("\n".join(levels) + "\n")
    assert config.gates == tuple(Gate(f"g{level}", min=1) for level in range(26))


def test_merge_of_a_scalar_is_refused() -> None:
    assert problem("gates:\n  f1:\n    <<: 3\n") == (
        f"{F}:3 gates.f1.<<: expected a mapping or a list of mappings to merge, got 3"
    )


def test_mapping_that_merges_itself_is_refused_not_looped_on() -> None:
    found = problems("evaluate: &self\n  <<: *self\n")
    assert (
        found[0] == f"{F}:2 evaluate.<<: expected merges that end, got a mapping that merges itself"
    )


# --- types and values ------------------------------------------------------------------------


def test_wrong_type_names_line_key_expected_and_value_found() -> None:
    text = """\
        version: 1
        metrics:
          source: git
        gates:
          # accuracy on the held-out set
          accuracy:
            min: high
        """
    assert problem(text) == f'{F}:7 gates.accuracy.min: expected a number, got "high"'


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("2", "2"),
        ('"1"', '"1"'),
        ("1.0", "1.0"),
        ("true", "true"),
        ("[1]", "a list"),
    ],
)
def test_version_must_be_1(value: str, got: str) -> None:
    assert problem(f"version: {value}\n") == (
        f"{F}:1 version: expected 1 (the only version this mlgate understands), got {got}"
    )


def test_string_true_is_not_a_boolean() -> None:
    assert problem('triggers:\n  drafts: "true"\n') == (
        f'{F}:2 triggers.drafts: expected true or false, got "true"'
    )


@pytest.mark.parametrize(("word", "value"), [("yes", True), ("no", False), ("True", True)])
def test_yaml_boolean_words_are_booleans(word: str, value: bool) -> None:
    assert parse(f"triggers:\n  drafts: {word}\n").triggers.drafts is value


def test_yaml_boolean_word_where_text_is_expected_says_to_quote_it() -> None:
    assert problem("deploy:\n  promotion: yes\n") == (
        f"{F}:2 deploy.promotion: expected a Semaphore promotion name, got yes"
        " (a boolean in YAML; quote it for text)"
    )


def test_date_where_text_is_expected_is_named_as_a_date() -> None:
    assert problem("semaphore:\n  project_id: 2024-01-01\n") == (
        f"{F}:2 semaphore.project_id: expected a Semaphore project id, got 2024-01-01"
        " (a date in YAML)"
    )


def test_explicit_tag_that_does_not_construct_is_named_with_its_tag() -> None:
    assert problem("evaluate:\n  repeats: !!int many\n") == (
        f'{F}:2 evaluate.repeats: expected an integer of at least 1, got "many" tagged !!int'
    )


def test_bad_enum_value_lists_the_choices_and_suggests_one() -> None:
    assert problem("metrics:\n  source: gti\n") == (
        f'{F}:2 metrics.source: expected one of git, run, semaphore, got "gti"'
        ' (did you mean "git"?)'
    )


def test_section_that_is_not_a_mapping_lists_its_keys() -> None:
    assert problem("evaluate: make eval\n") == (
        f"{F}:1 evaluate: expected a mapping of memory, network, repeats, run, timeout,"
        ' got "make eval"'
    )


# --- triggers and metrics --------------------------------------------------------------------


def test_glob_patterns_must_be_strings() -> None:
    assert problems("triggers:\n  data:\n    - data/*.dvc\n    - 3\n    - ''\n") == [
        f"{F}:4 triggers.data[1]: expected a glob pattern (a string), got 3",
        f'{F}:5 triggers.data[2]: expected a glob pattern (a string), got ""',
    ]


def test_globs_as_a_mapping_are_refused() -> None:
    assert problem("triggers:\n  code: {src: yes}\n") == (
        f"{F}:2 triggers.code: expected a list of glob patterns, got a mapping"
    )


def test_single_glob_is_a_list_of_one() -> None:
    assert parse("triggers:\n  code: src/**\n").triggers.code == ("src/**",)


def test_empty_glob_list_turns_a_trigger_off() -> None:
    assert parse("triggers:\n  data: []\n").triggers.data == ()


def test_drafts_can_be_evaluated() -> None:
    assert parse("triggers:\n  drafts: true\n").triggers.drafts is True


def test_metrics_files_are_paths() -> None:
    config = parse("metrics:\n  files: [eval/metrics.json, scores.yaml]\n")
    assert config.metrics.files == ("eval/metrics.json", "scores.yaml")
    assert problem("metrics:\n  files: [1.5]\n") == (
        f"{F}:2 metrics.files[0]: expected a path (a string), got 1.5"
    )


def test_metrics_from_run_needs_an_evaluate_command() -> None:
    assert problem("metrics:\n  source: run\n") == (
        f"{F}:2 evaluate.run: expected a command (required by metrics.source: run), got nothing"
    )
    config = parse("metrics: {source: run}\nevaluate: {run: make eval}\n")
    assert config.metrics.source == "run"
    assert config.evaluate.run == ("make", "eval")


def test_metrics_from_semaphore_need_project_and_pipeline() -> None:
    assert problems("version: 1\nmetrics:\n  source: semaphore\n") == [
        f"{F}:3 semaphore.project_id: expected a Semaphore project id"
        " (required by metrics.source: semaphore), got nothing",
        f"{F}:3 semaphore.pipeline_file: expected a path"
        " (required by metrics.source: semaphore), got nothing",
    ]
    config = parse(
        """\
        metrics: {source: semaphore}
        semaphore: {project_id: abc-123, pipeline_file: .semaphore/evaluate.yml}
        """
    )
    assert config.semaphore == SemaphoreConfig("abc-123", ".semaphore/evaluate.yml")


# --- evaluate and durations ------------------------------------------------------------------


def test_evaluate_run_is_split_into_argv_never_a_shell_line() -> None:
    config = parse("evaluate:\n  run: python eval.py --out 'my metrics.json' && rm -rf /\n")
    assert config.evaluate.run == (
        "python",
        "eval.py",
        "--out",
        "my metrics.json",
        "&&",
        "rm",
        "-rf",
        "/",
    )


def test_evaluate_run_as_a_list_keeps_arguments_and_numbers_as_text() -> None:
    config = parse("evaluate:\n  run: [python, eval.py, --seed, 7, 'a b']\n")
    assert config.evaluate.run == ("python", "eval.py", "--seed", "7", "a b")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '"dvc repro \'x"',
            "expected a command line with balanced quotes, got"
            ' "dvc repro \'x" (no closing quotation)',
        ),
        ("''", 'expected a command (a string or a list of arguments), got ""'),
        ("[]", "expected a command (a string or a list of arguments), got an empty list"),
        ("3", "expected a command (a string or a list of arguments), got 3"),
    ],
)
def test_evaluate_run_must_be_a_command(value: str, message: str) -> None:
    assert problem(f"evaluate:\n  run: {value}\n") == f"{F}:2 evaluate.run: {message}"


def test_boolean_argument_in_a_command_list_is_refused() -> None:
    assert problem("evaluate:\n  run: [eval, yes]\n") == (
        f"{F}:2 evaluate.run[1]: expected an argument (a string or a number), got yes"
        " (a boolean in YAML; quote it for text)"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (45, 45.0),
        (2.5, 2.5),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "0", "0m", 0, -5, "30 minutes", "m", "1d", "h1", True])
def test_invalid_durations(value: str | float) -> None:
    with pytest.raises(ValueError, match="expected a duration like 30m"):
        parse_duration(value)


def test_evaluate_timeout_is_a_duration_in_seconds() -> None:
    assert parse("evaluate:\n  timeout: 1h30m\n").evaluate.timeout == 5400.0
    assert parse("evaluate:\n  timeout: 600\n").evaluate.timeout == 600.0


@pytest.mark.parametrize(("value", "got"), [("0", "0"), ("-1m", '"-1m"'), ("soon", '"soon"')])
def test_evaluate_timeout_must_be_a_positive_duration(value: str, got: str) -> None:
    assert problem(f"evaluate:\n  timeout: {value}\n") == (
        f"{F}:2 evaluate.timeout: expected a duration like 30m, 1h30m, 90s or a number of"
        f" seconds, above 0, got {got}"
    )


@pytest.mark.parametrize(("value", "got"), [("0", "0"), ("1.5", "1.5"), ('"2"', '"2"')])
def test_evaluate_repeats_is_a_positive_integer(value: str, got: str) -> None:
    assert problem(f"evaluate:\n  repeats: {value}\n") == (
        f"{F}:2 evaluate.repeats: expected an integer of at least 1, got {got}"
    )


# --- gates -----------------------------------------------------------------------------------


def test_gate_thresholds_absolute_and_relative() -> None:
    config = parse(
        """\
        gates:
          accuracy: {min: 0.87, max: 1, max_drop: 0.01}
          loss: {direction: lower, max_rise: 5%}
          latency_ms: {direction: lower, max: 120, max_rise: " 2.5 % "}
          f1: {max_drop: 0}
        """
    )
    assert config.gates == (
        Gate("accuracy", "higher", min=0.87, max=1, max_drop=Threshold(0.01)),
        Gate("loss", "lower", max_rise=Threshold(5.0, relative=True)),
        Gate("latency_ms", "lower", max=120, max_rise=Threshold(2.5, relative=True)),
        Gate("f1", max_drop=Threshold(0.0)),
    )


@pytest.mark.parametrize(
    ("gate", "got"),
    [
        ("auc: {}", "an empty mapping"),
        ("auc:", "nothing"),
        ("auc: {min: }", "nothing"),
        ("auc: {direction: lower}", "only direction"),
    ],
)
def test_gate_without_a_threshold_is_refused_with_line_and_key(gate: str, got: str) -> None:
    # It could never fail: a gate in name only.
    assert problem(f"version: 1\ngates:\n  accuracy: {{min: 0.8}}\n  {gate}\n") == (
        f"{F}:4 gates.auc: expected at least one threshold: min, max, max_drop or max_rise,"
        f" got {got}"
    )


@pytest.mark.parametrize("threshold", ["min: 0", "max: 1", "max_drop: 0", "max_rise: 0"])
def test_any_one_threshold_makes_a_gate(threshold: str) -> None:
    direction = "lower" if threshold.startswith("max_rise") else "higher"
    config = parse(f"gates:\n  auc: {{direction: {direction}, {threshold}}}\n")
    assert [gate.metric for gate in config.gates] == ["auc"]


def test_gate_with_only_a_misspelt_threshold_is_reported_once() -> None:
    assert problem("gates:\n  auc: {mni: 0.9}\n") == (
        f"{F}:2 gates.auc.mni: unknown key; expected one of direction, max, max_drop, max_rise,"
        ' min (did you mean "min"?)'
    )


@pytest.mark.parametrize(
    ("value", "got"), [("-0.01", "-0.01"), ("-5%", '"-5%"'), ("lots", '"lots"')]
)
def test_negative_or_unreadable_threshold_is_refused(value: str, got: str) -> None:
    assert problem(f"gates:\n  accuracy:\n    max_drop: {value}\n") == (
        f"{F}:3 gates.accuracy.max_drop: expected a number (absolute) or a percentage like"
        f' "5%" (relative), not negative, got {got}'
    )


def test_max_drop_only_makes_sense_when_higher_is_better() -> None:
    assert problem("gates:\n  loss:\n    direction: lower\n    max_drop: 0.1\n") == (
        f"{F}:4 gates.loss.max_drop: expected max_rise for a metric with direction: lower"
        " (lower is better, so a drop is an improvement), got max_drop"
    )


def test_max_rise_only_makes_sense_when_lower_is_better() -> None:
    assert problem("gates:\n  accuracy:\n    max_rise: 1%\n") == (
        f"{F}:3 gates.accuracy.max_rise: expected max_drop for a metric where higher is better"
        " (a rise is an improvement; set direction: lower if lower is better), got max_rise"
    )


def test_direction_is_higher_or_lower() -> None:
    assert problem("gates:\n  loss: {direction: down, max: 1}\n") == (
        f'{F}:2 gates.loss.direction: expected one of higher, lower, got "down"'
    )


def test_gate_min_above_max_is_refused() -> None:
    assert problem("gates:\n  accuracy:\n    max: 0.5\n    min: 0.9\n") == (
        f"{F}:4 gates.accuracy.min: expected at most max (0.5), got 0.9"
    )


@pytest.mark.parametrize(("value", "got"), [(".nan", ".nan"), (".inf", ".inf"), ("true", "true")])
def test_gate_bound_must_be_a_finite_number(value: str, got: str) -> None:
    assert problem(f"gates:\n  accuracy: {{min: {value}}}\n") == (
        f"{F}:2 gates.accuracy.min: expected a number, got {got}"
    )


def test_gate_must_be_a_mapping() -> None:
    assert problem("gates:\n  accuracy: 0.9\n") == (
        f"{F}:2 gates.accuracy: expected a mapping of direction, max, max_drop, max_rise, min,"
        " got 0.9"
    )
    assert problem("gates: [accuracy]\n") == (
        f"{F}:1 gates: expected a mapping of metric names to gates, got a list"
    )


def test_gate_for_a_nested_dvc_metric_keeps_its_dotted_name() -> None:
    assert parse("gates:\n  train.loss: {direction: lower, max: 0.5}\n").gates == (
        Gate("train.loss", "lower", max=0.5),
    )


# --- retrain and its parameters --------------------------------------------------------------


def test_local_retrain_needs_a_command() -> None:
    assert problem("retrain:\n  parameters:\n    seed: {type: int}\n") == (
        f"{F}:1 retrain.run: expected a command (required by retrain.runner: local), got nothing"
    )


def test_semaphore_retrain_needs_pipeline_file_and_project() -> None:
    assert problems("retrain:\n  runner: semaphore\n") == [
        f"{F}:2 retrain.pipeline_file: expected a path"
        " (required by retrain.runner: semaphore), got nothing",
        f"{F}:2 semaphore.project_id: expected a Semaphore project id"
        " (required by retrain.runner: semaphore), got nothing",
    ]
    config = parse(
        """\
        retrain: {runner: semaphore, pipeline_file: .semaphore/retrain.yml}
        semaphore: {project_id: abc}
        """
    )
    assert config.retrain == RetrainConfig("semaphore", None, ".semaphore/retrain.yml")


def test_retrain_settings_of_the_other_runner_are_refused() -> None:
    assert problem("retrain:\n  run: make train\n  pipeline_file: .semaphore/r.yml\n") == (
        f"{F}:3 retrain.pipeline_file: expected no pipeline_file with retrain.runner: local"
        ' (that runs retrain.run), got ".semaphore/r.yml"'
    )
    text = """\
        semaphore: {project_id: abc}
        retrain: {runner: semaphore, pipeline_file: r.yml, run: make train}
        """
    assert problem(text) == (
        f"{F}:2 retrain.run: expected no run with retrain.runner: semaphore"
        ' (that starts retrain.pipeline_file), got "make train"'
    )


def test_invalid_runner_is_reported_without_guessing_its_needs() -> None:
    assert problem("retrain:\n  runner: docker\n") == (
        f'{F}:2 retrain.runner: expected one of local, semaphore, got "docker"'
    )


def retrain_with(parameters: str) -> str:
    return "retrain:\n  run: make train\n  parameters:\n" + textwrap.indent(
        textwrap.dedent(parameters), "    "
    )


def test_parameter_specs_of_every_type() -> None:
    config = parse_config(
        retrain_with(
            """\
            model: {choices: [xgboost, rf], default: rf}
            epochs: {type: int, min: 1, max: 500, required: true}
            lr: {type: float, min: 0, max: 1, default: 0.1}
            ratio: {type: float, choices: [0.5, 1]}
            early_stop: {type: bool, default: yes}
            note:
            """
        )
    )
    assert config.retrain.parameters == (
        Parameter("model", "string", choices=("xgboost", "rf"), default="rf"),
        Parameter("epochs", "int", min=1, max=500, required=True),
        Parameter("lr", "float", min=0, max=1, default="0.1"),
        Parameter("ratio", "float", choices=("0.5", "1.0")),
        Parameter("early_stop", "bool", default="true"),
        Parameter("note"),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{type: integer}",
            'type: expected one of string, int, float, bool, got "integer" (did you mean "int"?)',
        ),
        ("{type: int, choices: [1, two]}", 'choices[1]: expected an integer, got "two"'),
        (
            "{type: float, choices: [0.1, yes]}",
            "choices[1]: expected a number, got yes (a boolean in YAML; quote it for text)",
        ),
        ("{choices: [a, 1]}", "choices[1]: expected a string, got 1"),
        ("{type: bool, choices: [true, maybe]}", 'choices[1]: expected true or false, got "maybe"'),
        ("{choices: []}", "choices: expected a non-empty list of string values, got an empty list"),
        (
            "{type: string, min: 1}",
            "min: expected no min for a string parameter (only int and float have bounds), got 1",
        ),
        (
            "{type: bool, max: 1}",
            "max: expected no max for a bool parameter (only int and float have bounds), got 1",
        ),
        ("{type: int, min: 1.5}", "min: expected an integer, got 1.5"),
        ("{type: float, max: high}", 'max: expected a number, got "high"'),
        ("{type: int, min: 10, max: 1}", "min: expected at most max (1), got 10"),
        ("{type: int, default: ten}", 'default: expected an integer, got "ten"'),
        (
            "{type: int, max: 5, default: 6}",
            "default: expected a default that is an integer of at most 5, got 6",
        ),
        (
            "{type: float, min: 0.5, default: 0.1}",
            "default: expected a default that is a number of at least 0.5, got 0.1",
        ),
        (
            "{choices: [a, b], default: c}",
            'default: expected a default that is one of a, b, got "c"',
        ),
        ("{type: bool, default: 'true'}", 'default: expected true or false, got "true"'),
        (
            "{required: true, default: 3, type: int}",
            "default: expected no default for a required parameter, got 3",
        ),
        ("{required: 'yes'}", 'required: expected true or false, got "yes"'),
        (
            "{kind: int}",
            "kind: unknown key; expected one of choices, default, max, min, required, type",
        ),
        ("int", 'expected a mapping of choices, default, max, min, required, type, got "int"'),
    ],
)
def test_invalid_parameter_spec(spec: str, message: str) -> None:
    key = "retrain.parameters.p" + (": " if message.startswith("expected") else ".")
    assert problem(retrain_with(f"p: {spec}\n")) == f"{F}:4 {key}{message}"


def test_parameter_name_must_become_an_environment_variable() -> None:
    assert problem(retrain_with("learning-rate: {type: float}\n")) == (
        f"{F}:4 retrain.parameters.learning-rate: expected a name of letters, digits and _"
        ' (it becomes MLGATE_PARAM_<NAME>), got "learning-rate"'
    )


def test_parameter_names_differing_only_in_case_are_refused() -> None:
    assert problem(retrain_with("lr: {type: float}\nLR: {type: float}\n")) == (
        f'{F}:5 retrain.parameters.LR: expected a name that differs from "lr" in more than case'
        ' (both become MLGATE_PARAM_LR), got "LR"'
    )


def test_parameters_must_be_a_mapping() -> None:
    assert problem("retrain:\n  run: x\n  parameters: [epochs]\n") == (
        f"{F}:3 retrain.parameters: expected a mapping of parameter names to their specs,"
        " got a list"
    )


# --- deploy ----------------------------------------------------------------------------------


def test_deploy_by_command_with_named_approvers() -> None:
    config = parse(
        """\
        deploy:
          run: ./deploy.sh production
          approvers: {users: ["@alice", bob], teams: [acme/ml-leads]}
          allow_self_approval: true
          on: approval
        """
    )
    assert config.deploy == DeployConfig(
        promotion=None,
        run=("./deploy.sh", "production"),
        approvers=Approvers(permission=None, users=("alice", "bob"), teams=("acme/ml-leads",)),
        allow_self_approval=True,
        on="approval",
    )
    assert config.deploy.enabled


def test_deploy_needs_exactly_one_of_promotion_or_run() -> None:
    assert problem("deploy:\n  on: merge\n") == (
        f"{F}:1 deploy: expected exactly one of promotion or run, got neither"
    )
    assert problem("deploy:\n  promotion: Production\n  run: ./deploy.sh\n") == (
        f"{F}:1 deploy: expected exactly one of promotion or run, got both"
    )


def test_deploy_on_is_merge_or_approval() -> None:
    assert problem("deploy: {promotion: P, on: push}\n") == (
        f'{F}:1 deploy.on: expected one of merge, approval, got "push"'
    )


def test_approvers_permission_is_a_github_role() -> None:
    assert problem("deploy:\n  promotion: P\n  approvers: {permission: maintainer}\n") == (
        f"{F}:3 deploy.approvers.permission: expected one of read, triage, write, maintain, admin,"
        ' got "maintainer" (did you mean "maintain"?)'
    )


def test_approvers_need_someone() -> None:
    assert problem("deploy:\n  promotion: P\n  approvers: {}\n") == (
        f"{F}:3 deploy.approvers: expected at least one of permission, teams, users,"
        " got an empty mapping"
    )


def test_approver_logins_have_no_spaces() -> None:
    assert problem("deploy:\n  promotion: P\n  approvers:\n    users: [alice, Bob Smith]\n") == (
        f'{F}:4 deploy.approvers.users[1]: expected a GitHub login without spaces, got "Bob Smith"'
    )


def test_self_approval_must_be_a_boolean() -> None:
    assert problem("deploy:\n  promotion: P\n  allow_self_approval: 'no'\n") == (
        f'{F}:3 deploy.allow_self_approval: expected true or false, got "no"'
    )


# --- all at once -----------------------------------------------------------------------------


def test_every_problem_is_reported_together_in_line_order() -> None:
    text = """\
        version: 1
        gates:
          accuracy: {mni: 0.9}
        metrics:
          source: gti
        evaluate:
          timeout: soon
          repeats: 0
        triggers:
          drafts: "true"
        """
    assert problems(text) == [
        f"{F}:3 gates.accuracy.mni: unknown key; expected one of direction, max, max_drop,"
        ' max_rise, min (did you mean "min"?)',
        f'{F}:5 metrics.source: expected one of git, run, semaphore, got "gti"'
        ' (did you mean "git"?)',
        f"{F}:7 evaluate.timeout: expected a duration like 30m, 1h30m, 90s or a number of"
        ' seconds, above 0, got "soon"',
        f"{F}:8 evaluate.repeats: expected an integer of at least 1, got 0",
        f'{F}:10 triggers.drafts: expected true or false, got "true"',
    ]


# --- the CLI helper --------------------------------------------------------------------------


def test_validate_file_of_a_valid_file_has_no_problems() -> None:
    assert validate_file(FIXTURES / "design-example.yml") == []


def test_validate_file_names_problems_by_the_path_given(tmp_path: Path) -> None:
    path = tmp_path / "mlgate.yml"
    path.write_text("evaluate:\n  repeats: 0\ngates:\n  loss: {max_rise: 1}\n")
    assert validate_file(path) == [
        f"{path}:2 evaluate.repeats: expected an integer of at least 1, got 0",
        f"{path}:4 gates.loss.max_rise: expected max_drop for a metric where higher is better"
        " (a rise is an improvement; set direction: lower if lower is better), got max_rise",
    ]


def test_validate_file_of_a_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "mlgate.yml"
    assert validate_file(path) == [f"{path}: no such file"]


def test_validate_file_of_binary_says_it_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "mlgate.yml"
    path.write_bytes(b"version: 1\n\xff\xfe")
    assert validate_file(path) == [f"{path}: expected UTF-8 text, got byte 0xff at 11"]


def test_validate_file_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "mlgate.yml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\n")
    assert validate_file(path) == []


# --- /retrain arguments ----------------------------------------------------------------------

SPECS = (
    Parameter("model", "string", choices=("xgboost", "random_forest"), default="xgboost"),
    Parameter("epochs", "int", min=1, max=500),
    Parameter("lr", "float", min=0, max=1, default="0.1"),
    Parameter("early_stop", "bool", default="false"),
    Parameter("tag"),
)


def test_parameters_have_defaults_filled_in_as_strings() -> None:
    assert validate_parameters(SPECS, {}) == {
        "model": "xgboost",
        "lr": "0.1",
        "early_stop": "false",
    }


def test_given_parameters_override_defaults_in_declaration_order() -> None:
    given = {"tag": "nightly run", "epochs": "007", "model": "random_forest", "lr": "1e-3"}
    assert list(validate_parameters(SPECS, given).items()) == [
        ("model", "random_forest"),
        ("epochs", "7"),
        ("lr", "0.001"),
        ("early_stop", "false"),
        ("tag", "nightly run"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", "true"),
        ("TRUE", "true"),
        ("Yes", "true"),
        ("1", "true"),
        ("false", "false"),
        ("no", "false"),
        ("NO", "false"),
        ("0", "false"),
    ],
)
def test_bool_parameter_accepts_common_spellings(text: str, value: str) -> None:
    assert validate_parameters(SPECS, {"early_stop": text})["early_stop"] == value


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        (
            "early_stop",
            "maybe",
            "early_stop=maybe: not a boolean; expected true or false (or yes/no, 1/0)",
        ),
        ("epochs", "ten", "epochs=ten: not an integer; expected an integer from 1 to 500"),
        ("epochs", "1.5", "epochs=1.5: not an integer; expected an integer from 1 to 500"),
        ("epochs", "0", "epochs=0: below the minimum; expected an integer from 1 to 500"),
        ("epochs", "501", "epochs=501: above the maximum; expected an integer from 1 to 500"),
        ("lr", "fast", "lr=fast: not a number; expected a number from 0 to 1"),
        ("lr", "nan", "lr=nan: not a number; expected a number from 0 to 1"),
        ("lr", "-0.5", "lr=-0.5: below the minimum; expected a number from 0 to 1"),
        ("lr", "1.01", "lr=1.01: above the maximum; expected a number from 0 to 1"),
        (
            "model",
            "svm",
            "model=svm: not one of the choices; expected one of xgboost, random_forest",
        ),
        ("tag", "a\x00b", "tag=a\x00b: contains a NUL character; expected any text"),
    ],
)
def test_invalid_parameter_value_names_it_and_what_is_accepted(
    key: str, text: str, message: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SPECS, {key: text})
    assert caught.value.problems == [message]


def test_integer_parameter_too_long_to_convert_is_refused() -> None:
    with pytest.raises(ParameterError, match="not an integer"):
        validate_parameters(SPECS, {"epochs": "9" * 5000})


def test_unknown_parameter_lists_accepted_keys() -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SPECS, {"epoch": "3"})
    assert str(caught.value) == (
        'unknown parameter "epoch"; /retrain accepts model, epochs, lr, early_stop, tag'
        ' (did you mean "epochs"?)'
    )


def test_unknown_parameter_when_none_are_declared() -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters((), {"epochs": "3"})
    assert str(caught.value) == (
        'unknown parameter "epochs"; /retrain accepts none (retrain.parameters declares none)'
    )


def test_required_parameter_missing_is_refused() -> None:
    specs = (Parameter("epochs", "int", min=1, required=True),)
    with pytest.raises(ParameterError) as caught:
        validate_parameters(specs, {})
    assert str(caught.value) == (
        "missing required parameter epochs; expected epochs=<value> with an integer of at least 1"
    )
    assert validate_parameters(specs, {"epochs": "3"}) == {"epochs": "3"}


def test_every_bad_parameter_is_reported_together() -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SPECS, {"epochs": "0", "colour": "red", "lr": "x"})
    assert caught.value.problems == [
        "epochs=0: below the minimum; expected an integer from 1 to 500",
        'unknown parameter "colour"; /retrain accepts model, epochs, lr, early_stop, tag',
        "lr=x: not a number; expected a number from 0 to 1",
    ]


def test_float_choices_match_numerically() -> None:
    spec = Parameter("ratio", "float", choices=("0.5", "1.0"))
    assert validate_parameters([spec], {"ratio": "1"}) == {"ratio": "1.0"}
    assert validate_parameters([spec], {"ratio": ".50"}) == {"ratio": "0.5"}


@pytest.mark.parametrize(
    ("spec", "accepted"),
    [
        (Parameter("p", "int", max=9), "an integer of at most 9"),
        (Parameter("p", "float"), "a number"),
        (Parameter("p", "float", min=0.25), "a number of at least 0.25"),
        (Parameter("p", "int", choices=("1", "2")), "one of 1, 2"),
    ],
)
def test_describe_accepted(spec: Parameter, accepted: str) -> None:
    assert describe_accepted(spec) == accepted


def test_parsed_parameters_validate_retrain_arguments() -> None:
    config = parse((FIXTURES / "design-example.yml").read_text())
    assert validate_parameters(config.retrain.parameters, {"epochs": "20"}) == {
        "model": "xgboost",
        "epochs": "20",
    }


# --- robustness ------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "version",
        "triggers",
        "data",
        "code",
        "drafts",
        "metrics",
        "files",
        "source",
        "evaluate",
        "run",
        "timeout",
        "repeats",
        "retrain",
        "runner",
        "pipeline_file",
        "parameters",
        "type",
        "choices",
        "min",
        "max",
        "required",
        "default",
        "semaphore",
        "project_id",
        "gates",
        "accuracy",
        "direction",
        "max_drop",
        "max_rise",
        "deploy",
        "promotion",
        "approvers",
        "permission",
        "users",
        "teams",
        "allow_self_approval",
        "on",
        "git",
        "local",
        "int",
        "float",
        "bool",
        "string",
        "lower",
        "higher",
        "merge",
    ]
) | st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["30m", "1h30m", "5%", "-5%", "semaphore", "run", "maintain", "a 'b"])
)
_STRUCTURES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_arbitrary_text_only_ever_raises_repo_config_error(text: str) -> None:
    try:
        parse_config(text)
    except RepoConfigError as exc:
        assert exc.problems
        assert all(line.startswith(f"{F}:") for line in exc.problems)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEYS, _STRUCTURES, max_size=8))
def test_arbitrary_yaml_structures_only_ever_raise_repo_config_error(
    data: dict[str, object],
) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        parse_config(text)
    except RepoConfigError as exc:
        assert exc.problems
        assert all(line.startswith(f"{F}:") for line in exc.problems)


def test_monitor_section_with_its_defaults_and_gates() -> None:
    config = parse_config("gates:\n  accuracy: {min: 0.8}\nmonitor:\n  window: 2\n")
    assert config.monitor is not None
    assert (config.monitor.env, config.monitor.window, config.monitor.on_breach) == (
        "production",
        2,
        ("issue",),
    )
    # No gates of its own: production is held to the top-level ones.
    assert config.monitor_gates() == config.gates
    own = parse_config(
        "gates:\n  accuracy: {min: 0.8}\n"
        "monitor:\n  env: staging\n  on_breach: [retrain, issue]\n  gates:\n    f1: {min: 0.5}\n"
    )
    assert own.monitor is not None and own.monitor.on_breach == ("retrain", "issue")
    assert [g.metric for g in own.monitor_gates()] == ["f1"]
    assert parse_config("gates:\n  accuracy: {min: 0.8}\n").monitor is None


@pytest.mark.parametrize(
    "text, problem",
    [
        ("monitor:\n  window: 0\n", ":2 monitor.window: expected an integer of at least 1, got 0"),
        (
            "monitor:\n  on_breach: [page]\n",
            ':2 monitor.on_breach[0]: expected one of issue, retrain, got "page"',
        ),
        ("monitor:\n  env: 'a b'\n", ":2 monitor.env: expected an environment name"),
        ("monitor:\n  wndow: 3\n", ":2 monitor.wndow: unknown key; expected one of env, gates"),
        ("monitor:\n  gates:\n    acc: {min: x}\n", ":3 monitor.gates.acc.min: expected a number"),
    ],
)
def test_monitor_section_errors_name_the_line_and_key(text: str, problem: str) -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_config(text)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


# --- continuous training and the sandbox's step settings ------------------------------------


def test_continuous_training_keys_of_the_design_example() -> None:
    config = parse(
        """\
        retrain:
          runner: local
          run: dvc repro train
          network: true
          on_data: true
          schedule: "0 3 * * 1"
          outputs: [dvc.lock, metrics.json, "models/*.dvc"]
          max_candidates: 8
          rank_by: accuracy
        """
    )
    assert config.retrain == RetrainConfig(
        runner="local",
        run=("dvc", "repro", "train"),
        network=True,
        on_data=True,
        schedule="0 3 * * 1",
        outputs=("dvc.lock", "metrics.json", "models/*.dvc"),
        max_candidates=8,
        rank_by="accuracy",
    )


def test_continuous_training_is_off_by_default() -> None:
    retrain = parse("retrain:\n  run: make train\n").retrain
    assert retrain.on_data is False
    assert retrain.schedule is None
    assert retrain.network is False
    assert retrain.memory == 4 * 1024**3 == DEFAULT_MEMORY
    assert retrain.outputs == ("dvc.lock", "metrics.json", "**/*.dvc") == DEFAULT_RETRAIN_OUTPUTS
    assert retrain.max_candidates == 8
    assert retrain.rank_by is None
    assert default_config().retrain == retrain.__class__(run=None)


def test_network_is_off_for_evaluate_and_retrain_and_on_for_deploy() -> None:
    config = default_config()
    assert (config.evaluate.network, config.retrain.network, config.deploy.network) == (
        False,
        False,
        True,
    )
    assert config.evaluate.memory == config.retrain.memory == config.deploy.memory == 4 * 1024**3
    config = parse(
        """\
        evaluate: {network: true, memory: 512M}
        deploy: {run: ./deploy.sh, network: false, memory: 1.5G}
        """
    )
    assert config.evaluate.network is True
    assert config.evaluate.memory == 512 * 1024**2
    assert config.deploy.network is False
    assert config.deploy.memory == int(1.5 * 1024**3)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 * 1024**3),
        ("4g", 4 * 1024**3),
        ("4GiB", 4 * 1024**3),
        ("4 GB", 4 * 1024**3),
        ("64M", 64 * 1024**2),
        ("65536K", 64 * 1024**2),
        ("1T", 1024**4),
        ("0.5G", 512 * 1024**2),
    ],
)
def test_memory_sizes_are_binary_units(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["4096", "4", "63M", "1.1T", "2T", "4X", "G", "-1G", "", "4 G B"])
def test_memory_sizes_need_a_unit_and_a_sensible_amount(text: str) -> None:
    with pytest.raises(ValueError, match="a memory size with a unit, like 4G or 512M"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "evaluate:\n  memory: 4096\n",
            ":2 evaluate.memory: expected a memory size with a unit, like 4G or 512M,"
            " from 64M to 1T, got 4096",
        ),
        (
            "retrain:\n  run: t\n  memory: lots\n",
            ":3 retrain.memory: expected a memory size with a unit, like 4G or 512M,"
            ' from 64M to 1T, got "lots"',
        ),
        (
            "deploy:\n  run: d\n  network: 'yes'\n",
            ':3 deploy.network: expected true or false, got "yes"',
        ),
        ("evaluate:\n  network: 1\n", ":2 evaluate.network: expected true or false, got 1"),
        (
            "retrain:\n  run: t\n  on_data: 'true'\n",
            ':3 retrain.on_data: expected true or false, got "true"',
        ),
    ],
)
def test_step_settings_errors_name_the_line_and_key(text: str, message: str) -> None:
    assert problem(text) == F + message


@pytest.mark.parametrize(
    ("schedule", "got"),
    [
        ('"0 3 * *"', '"0 3 * *" (expected 5 fields, got 4)'),
        ('"0 25 * * 1"', '"0 25 * * 1" (hour 25 is outside 0-23)'),
        ('"0 0 30 2 *"', '"0 0 30 2 *" (never fires: no chosen day of the month occurs in feb)'),
        ('"@reboot"', '"@reboot" (unknown shorthand @reboot; use one of @yearly, @annually,'),
        ("3", "3"),
        ("[0, 3]", "a list"),
    ],
)
def test_schedule_must_be_a_cron_expression(schedule: str, got: str) -> None:
    found = problem(f"retrain:\n  run: make train\n  schedule: {schedule}\n")
    assert found.startswith(
        f"{F}:3 retrain.schedule: expected a cron expression of 5 fields (minute hour"
        f' day-of-month month day-of-week, in UTC), like "0 3 * * 1", got {got}'
    ), found


def test_schedule_is_kept_as_written_with_spaces_normalised() -> None:
    config = parse("retrain:\n  run: make train\n  schedule: ' 0  3 * * mon '\n")
    assert config.retrain.schedule == "0 3 * * mon"
    assert parse("retrain:\n  run: t\n  schedule: '@daily'\n").retrain.schedule == "@daily"


def test_outputs_are_glob_patterns_inside_the_repository() -> None:
    assert parse("retrain:\n  run: t\n  outputs: models/*.dvc\n").retrain.outputs == (
        "models/*.dvc",
    )
    assert problem("retrain:\n  run: t\n  outputs: []\n") == (
        f"{F}:3 retrain.outputs: expected at least one glob pattern, got an empty list"
    )
    assert problem("retrain:\n  run: t\n  outputs:\n    - dvc.lock\n    - ../secrets/*\n") == (
        f"{F}:5 retrain.outputs[1]: expected a glob pattern inside the repository (no ..),"
        ' got "../secrets/*"'
    )
    assert problem("retrain:\n  run: t\n  outputs: a/../../b\n") == (
        f"{F}:3 retrain.outputs: expected a glob pattern inside the repository (no ..),"
        ' got "a/../../b"'
    )
    assert problem("retrain:\n  run: t\n  outputs: [dvc.lock, 3]\n") == (
        f"{F}:3 retrain.outputs[1]: expected a glob pattern (a string), got 3"
    )


@pytest.mark.parametrize(("value", "accepted"), [("1", 1), ("64", 64), ("8", 8)])
def test_max_candidates_from_1_to_64(value: str, accepted: int) -> None:
    config = parse(f"retrain:\n  run: t\n  max_candidates: {value}\n")
    assert config.retrain.max_candidates == accepted


@pytest.mark.parametrize(("value", "got"), [("0", "0"), ("65", "65"), ("2.5", "2.5"), ("x", '"x"')])
def test_max_candidates_outside_1_to_64_is_refused(value: str, got: str) -> None:
    assert problem(f"retrain:\n  run: t\n  max_candidates: {value}\n") == (
        f"{F}:3 retrain.max_candidates: expected an integer from 1 to 64, got {got}"
    )


def test_rank_by_defaults_to_the_first_gate_that_names_one_metric() -> None:
    config = parse(
        """\
        gates:
          per_class.*.f1: {min: 0.7}
          loss: {direction: lower, max: 1}
          accuracy: {min: 0.8}
        """
    )
    assert config.retrain.rank_by is None
    assert config.rank_metric() == "loss"
    assert parse("gates:\n  accuracy: {min: 0.8}\n").rank_metric() == "accuracy"
    assert parse("gates:\n  a.*.f1: {min: 0.8}\n").rank_metric() is None
    assert default_config().rank_metric() is None
    ranked = parse("retrain: {run: t, rank_by: f1}\ngates:\n  accuracy: {min: 0.8}\n")
    assert ranked.rank_metric() == "f1"


def test_rank_by_is_one_metric_name() -> None:
    assert problem("retrain:\n  run: t\n  rank_by: per_class.*.f1\n") == (
        f'{F}:3 retrain.rank_by: expected one metric name, without *, got "per_class.*.f1"'
    )
    assert problem("retrain:\n  run: t\n  rank_by: 3\n") == (
        f"{F}:3 retrain.rank_by: expected a metric name, got 3"
    )


def test_unknown_retrain_key_lists_the_new_ones() -> None:
    assert problem("retrain:\n  run: t\n  schedul: '@daily'\n") == (
        f"{F}:3 retrain.schedul: unknown key; expected one of max_candidates, memory, network,"
        " on_data, outputs, parameters, pipeline_file, rank_by, run, runner, schedule"
        ' (did you mean "schedule"?)'
    )
