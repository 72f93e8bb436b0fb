"""Pull-request commands: which lines are commands, their arguments, `/retrain` values, replies."""

from __future__ import annotations

import re
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import (
    COMMANDS,
    MAX_COMMANDS,
    MAX_NESTING,
    OVERRIDE_REASON_LIMIT,
    RETRAIN_ARGUMENTS_LIMIT,
    Command,
    RetrainRequest,
    help_text,
    not_head_reply,
    old_button_reply,
    parse,
    parse_comment,
    parse_retrain,
    problems_reply,
    quote_line,
    refusal,
    stale_reply,
    unknown_command_reply,
)
from bot.core.config import Parameter, describe_accepted
from tests.support import growth

SPECS = (
    Parameter("model", "string", choices=("xgboost", "random_forest"), default="xgboost"),
    Parameter("epochs", "int", min=1, max=500, required=True),
    Parameter("note", "string"),
)


def names(body: str) -> list[str]:
    return [command.name for command in parse(body)]


def problems_of(result: RetrainRequest | list[str]) -> list[str]:
    assert isinstance(result, list), result
    return result


# --- which lines are commands ---------------------------------------------------------------


def test_a_command_line_gives_its_name_words_and_the_line_as_written() -> None:
    [command] = parse("Looks good.\n  /retrain model=xgboost epochs=50  \nthanks")
    assert command == Command(
        name="retrain",
        args=("model=xgboost", "epochs=50"),
        line="  /retrain model=xgboost epochs=50  ",
        lineno=2,
        text="model=xgboost epochs=50",
    )
    assert command.known


def test_leading_spaces_and_tabs_are_allowed() -> None:
    assert names(" /evaluate\n\t/deploy\n   \t /help") == ["evaluate", "deploy", "help"]


def test_names_are_case_insensitive() -> None:
    assert names("/Retrain\n/EVALUATE\n/HeLp") == ["retrain", "evaluate", "help"]


def test_several_commands_are_all_returned_in_order() -> None:
    body = "/evaluate\nsome words\n/retrain epochs=5\n\n/override flaky metric\n/evaluate"
    commands = parse(body)
    assert [(c.name, c.lineno) for c in commands] == [
        ("evaluate", 1),
        ("retrain", 3),
        ("override", 5),
        ("evaluate", 6),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "/",
        "/ some text",
        "/usr/bin/python is the interpreter",
        "/evaluate.",
        "/evaluate, please",
        "/evaluate/now",
        "/9lives",
        "/_private",
        "//evaluate",
        "text /evaluate",
        "`/evaluate`",
        "-/evaluate",
        "\\/evaluate",
        "\u00a0/evaluate",
        "/evaluate\u00a0now",
    ],
)
def test_a_slash_not_followed_by_a_name_and_a_space_is_not_a_command(line: str) -> None:
    assert parse(line) == []


def test_a_name_may_hold_digits_dashes_and_underscores() -> None:
    assert names("/ok-to-test\n/re_train2") == ["ok-to-test", "re_train2"]


def test_an_unknown_command_is_returned_without_problems_or_arguments() -> None:
    [command] = parse("/retrian epochs=5 'unbalanced")
    assert (command.name, command.args, command.problems) == ("retrian", (), ())
    assert command.text == "epochs=5 'unbalanced"
    assert not command.known


def test_crlf_and_lone_cr_end_lines() -> None:
    body = "/evaluate\r\n```\r\n/retrain\r\n```\r\n/deploy\r/help"
    assert names(body) == ["evaluate", "deploy", "help"]
    assert parse(body)[0].line == "/evaluate"


def test_only_markdown_line_endings_split_lines() -> None:
    # U+2028 and \x85 are not line endings to GitHub, so this is one line, and not a command.
    assert parse("/evaluate\u2028/deploy") == []
    assert parse("text\x85/deploy") == []


# --- fenced code blocks ----------------------------------------------------------------------


def test_lines_in_a_backtick_fence_with_an_info_string_are_not_commands() -> None:
    assert names("```python\n/retrain epochs=5\n```\n/evaluate") == ["evaluate"]


def test_lines_in_a_tilde_fence_are_not_commands() -> None:
    assert names("~~~ text\n/deploy\n~~~\n/evaluate") == ["evaluate"]


def test_an_unclosed_fence_runs_to_the_end_of_the_comment() -> None:
    assert names("/evaluate\n```\n/deploy\n\n/retrain") == ["evaluate"]


def test_a_shorter_fence_inside_a_longer_one_does_not_close_it() -> None:
    body = "````markdown\n```\n/deploy\n```\n/retrain\n````\n/evaluate"
    assert names(body) == ["evaluate"]


def test_a_fence_of_the_other_character_does_not_close_it() -> None:
    assert names("```\n~~~\n/deploy\n~~~\n```\n/evaluate") == ["evaluate"]


def test_a_closing_fence_may_be_longer_but_carries_no_info_string() -> None:
    assert names("```\n```python\n/deploy\n`````\n/evaluate") == ["evaluate"]


def test_a_backtick_fence_whose_info_string_has_a_backtick_is_inline_code() -> None:
    assert names("``` a`b\n/evaluate") == ["evaluate"]


def test_a_fence_indented_three_spaces_opens_but_four_spaces_is_indented_text() -> None:
    assert names("   ```\n/deploy\n   ```\n/evaluate") == ["evaluate"]
    assert names("text\n\n    ```\n/evaluate") == ["evaluate"]


def test_a_fence_inside_a_list_item_holds_its_indented_lines() -> None:
    body = "- run this:\n  ```\n  /deploy\n  ```\n  /evaluate"
    assert names(body) == ["evaluate"]


def test_a_fence_inside_a_list_item_ends_with_the_item() -> None:
    assert names("- ```\n  /deploy\n/evaluate") == ["evaluate"]


def test_a_fence_inside_a_quote_ends_with_the_quote() -> None:
    assert names("> ```\n> /deploy\n/evaluate") == ["evaluate"]


# --- quotes, comments, indentation -------------------------------------------------------------


def test_quoted_lines_are_not_commands() -> None:
    assert names("> /deploy\n>/retrain\n\n/evaluate") == ["evaluate"]


def test_nested_quotes_and_quotes_in_lists_are_not_commands() -> None:
    body = "> > /deploy\n> >\n> > > /retrain\n\n- > /deploy\n  > /retrain\n\n/evaluate"
    assert names(body) == ["evaluate"]


def test_a_line_right_after_a_quoted_paragraph_is_quoted_too() -> None:
    # GitHub renders it inside the quote (a lazy continuation line); a blank line ends the quote.
    assert names("> could you retrain?\n/retrain epochs=5\n\n/evaluate") == ["evaluate"]
    assert names("- > quoted in a list\n  /retrain\n\n  /evaluate") == ["evaluate"]


def test_a_line_after_a_quoted_fence_or_heading_is_not_lazy() -> None:
    assert names("> ```\n> code\n> ```\n/evaluate") == ["evaluate"]
    assert names("> # Heading\n/evaluate") == ["evaluate"]
    assert names("> quoted\n> ===\n/evaluate") == ["evaluate"]  # a setext heading


def test_github_quote_reply_then_a_command() -> None:
    body = "> Can you check the new data?\n> /evaluate\n\nSure:\n/evaluate"
    assert [c.lineno for c in parse(body)] == [5]


def test_lines_in_an_html_comment_are_hidden_and_not_commands() -> None:
    body = "<!--\n/deploy\n-->\n/evaluate\n<!-- one line -->\n/help\n  <!-- a\n/retrain -->\n/help"
    assert names(body) == ["evaluate", "help", "help"]


def test_indented_lines_are_commands() -> None:
    # Only fences make code: an indented `/evaluate` is more likely a typo than an example.
    assert names("    /evaluate\n\n\t/deploy") == ["evaluate", "deploy"]


def test_a_command_inside_a_list_item_counts_when_the_line_starts_with_it() -> None:
    assert names("- first\n  /evaluate\n- /deploy") == ["evaluate"]


def test_nesting_deeper_than_the_limit_is_plain_text_and_still_quoted() -> None:
    deep = "> " * (MAX_NESTING + 10)
    assert names(f"{deep}text\n/deploy\n\n/evaluate") == ["evaluate"]


# --- arguments of each command -----------------------------------------------------------------


def test_words_are_split_like_a_shell_does() -> None:
    [command] = parse("""/retrain note="two words" 'model'=xgboost epochs=5\\ 0 a=""")
    assert command.args == ("note=two words", "model=xgboost", "epochs=5 0", "a=")
    assert command.problems == ()


def test_an_unbalanced_quote_is_a_problem_on_the_command() -> None:
    [command] = parse('/retrain note="two words')
    assert command.args == ()
    assert command.problems == ('a quote is not closed; close it, e.g. name="two words"',)


def test_a_trailing_backslash_is_a_problem_on_the_command() -> None:
    [command] = parse("/retrain epochs=5 \\")
    assert command.problems == ("the line ends with a \\ that escapes nothing; remove it",)


def test_retrain_arguments_over_the_limit_are_a_problem() -> None:
    [command] = parse("/retrain note=" + "x" * RETRAIN_ARGUMENTS_LIMIT)
    assert command.args == ()
    assert "at most 10000 are allowed" in command.problems[0]


def test_deploy_takes_no_arguments() -> None:
    [command] = parse("/deploy to staging please")
    assert command.problems == (
        '/deploy takes no arguments, but "to staging please" follows it;'
        " write /deploy alone on its line",
    )
    assert parse("/deploy   ")[0].problems == ()


@pytest.mark.parametrize(
    ("written", "sha"),
    [
        ("abc1234", "abc1234"),
        ("ABC1234def", "abc1234def"),
        ("0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567"),
    ],
)
def test_evaluate_takes_a_commit_sha_of_7_to_40_hex_digits(written: str, sha: str) -> None:
    [command] = parse(f"/evaluate {written}")
    assert (command.args, command.problems) == ((sha,), ())
    assert parse("/evaluate   ")[0].args == ()
    assert parse("/evaluate   ")[0].problems == ()


@pytest.mark.parametrize(
    "text",
    [
        "abc123",  # 6 digits
        "0123456789abcdef0123456789abcdef012345678",  # 41 digits
        "abc1234g",
        "abc1234 def5678",
        "to staging please",
        "-abc1234",
    ],
)
def test_evaluate_refuses_anything_but_one_sha(text: str) -> None:
    [command] = parse(f"/evaluate {text}")
    assert command.args == ()
    [problem] = command.problems
    assert problem.startswith(
        "/evaluate takes a commit sha (7 to 40 hexadecimal digits) or nothing"
    )


def test_a_comment_gives_at_most_ten_commands_and_counts_the_rest() -> None:
    assert MAX_COMMANDS == 10
    exactly = parse_comment("\n".join(f"/retrain epochs={n}" for n in range(10)))
    assert len(exactly.commands) == 10 and exactly.ignored == 0
    assert exactly.ignored_note() is None
    body = "\n".join(f"/retrain epochs={n}" for n in range(13)) + "\n```\n/help\n```"
    read = parse_comment(body)
    assert [c.args for c in read.commands] == [(f"epochs={n}",) for n in range(10)]
    assert read.ignored == 3  # the /help in the code block is no command at all
    assert read.ignored_note() == (
        "Only the first 10 command lines of a comment are read; 3 more lines were ignored."
    )
    assert parse_comment("/help\n" * 11).ignored_note() == (
        "Only the first 10 command lines of a comment are read; 1 more line was ignored."
    )
    assert len(parse(body)) == 13  # parse itself finds every command


def test_a_64_kb_comment_of_commands_reads_ten_in_linear_time() -> None:
    def body(lines: int) -> str:
        return ("/retrain a=" + "x" * 40 + "\n") * lines

    read = parse_comment(body(65536 // 52))
    assert len(read.commands) == 10 and read.ignored == 65536 // 52 - 10
    assert growth(lambda n: parse_comment(body(n)), 400) < 8  # linear: about 4; quadratic: 16


def test_help_ignores_what_follows_it() -> None:
    [command] = parse("/help me with 'retrain")
    assert (command.args, command.problems) == ((), ())


def test_override_reason_is_the_rest_of_the_line_stripped() -> None:
    [command] = parse("/override   accuracy dropped 0.2%, that's noise; see #12  ")
    assert command.text == "accuracy dropped 0.2%, that's noise; see #12"
    assert command.problems == ()


@pytest.mark.parametrize("line", ["/override", "/override   ", "/override\t"])
def test_override_needs_a_reason(line: str) -> None:
    [command] = parse(line)
    assert command.problems[0].startswith("/override needs a reason on the same line")


def test_override_reason_may_have_1000_characters_not_more() -> None:
    assert parse("/override " + "x" * OVERRIDE_REASON_LIMIT)[0].problems == ()
    [command] = parse("/override " + "x" * (OVERRIDE_REASON_LIMIT + 1))
    assert command.problems == ("the reason is 1001 characters long; at most 1000 are allowed",)


# --- /retrain parameters -----------------------------------------------------------------------


def test_retrain_fills_in_defaults_as_canonical_strings() -> None:
    assert parse_retrain(["epochs=050"], SPECS) == RetrainRequest(
        {"model": "xgboost", "epochs": "50"}
    )


def test_retrain_values_with_spaces_arrive_whole() -> None:
    [command] = parse('/retrain epochs=5 note="try a=b, again"')
    request = parse_retrain(command.args, SPECS)
    assert isinstance(request, RetrainRequest)
    assert request.parameters["note"] == "try a=b, again"


def test_the_retrain_button_gets_the_defaults_or_the_missing_required() -> None:
    assert parse_retrain((), SPECS[:1]) == RetrainRequest({"model": "xgboost"})
    assert parse_retrain((), SPECS) == [
        "missing required parameter epochs; expected epochs=<value> with an integer from 1 to 500"
    ]


def test_a_bare_word_is_a_problem_naming_it() -> None:
    assert parse_retrain(["epochs=5", "fast"], SPECS) == [
        '"fast" is not name=value; write each parameter as name=value, e.g. model=<value>'
    ]


def test_a_bare_word_that_is_a_choice_suggests_its_parameter() -> None:
    assert parse_retrain(["random_forest"], SPECS) == [
        '"random_forest" is not name=value; write each parameter as name=value'
        " (did you mean model=random_forest?)"
    ]


def test_an_argument_without_a_name_is_a_problem() -> None:
    assert parse_retrain(["=5"], SPECS) == ['"=5" has no parameter name before the =']


def test_a_parameter_given_twice_is_a_problem() -> None:
    assert parse_retrain(["epochs=5", "model=xgboost", "epochs=6"], SPECS) == [
        'epochs is given 2 times ("epochs=5", "epochs=6"); give it once'
    ]


def test_values_are_validated_against_retrain_parameters() -> None:
    assert parse_retrain(["epochs=0", "model=svm", "lr=0.1"], SPECS) == [
        "epochs=0: below the minimum; expected an integer from 1 to 500",
        "model=svm: not one of the choices; expected one of xgboost, random_forest",
        'unknown parameter "lr"; /retrain accepts model, epochs, note',
    ]


def test_a_misspelt_parameter_gets_a_did_you_mean() -> None:
    [problem] = problems_of(parse_retrain(["epochs=5", "modle=xgboost"], SPECS))
    assert problem.endswith('(did you mean "model"?)')


def test_retrain_without_declared_parameters_refuses_any() -> None:
    assert parse_retrain((), ()) == RetrainRequest({})
    [problem] = problems_of(parse_retrain(["epochs=5"], ()))
    assert "declares none" in problem


# --- replies -----------------------------------------------------------------------------------


def test_help_lists_every_command_what_it_does_and_who_may_use_it() -> None:
    text = help_text()
    for spec in COMMANDS.values():
        assert f"| `{spec.usage}` | {spec.description} | {spec.who} |" in text
    assert "| `/evaluate [sha]` |" in text and "`/retrain [key=value ...]`" in text
    assert "`/override <reason>`" in text
    who = {name: spec.who for name, spec in COMMANDS.items()}
    assert who == {
        "evaluate": "users with write permission or more",
        "retrain": "users with write permission or more",
        "promote": "users with write permission or more",
        "override": "users with write permission or more",
        "deploy": "approvers named in deploy.approvers",
        "help": "anyone",
    }


def test_help_lists_the_accepted_retrain_parameters() -> None:
    text = help_text(SPECS)
    assert "- `model`: one of xgboost, random\\_forest; default `xgboost`" in text
    assert f"- `epochs`: {describe_accepted(SPECS[1])}; required" in text
    assert "- `note`: any text; optional" in text


def test_help_says_when_retrain_takes_no_parameters() -> None:
    assert "`/retrain` accepts no parameters" in help_text()


def test_help_shows_configured_choices_literally() -> None:
    spec = Parameter("mode", "string", choices=("*fast*", "a|b", "<b>"), default="a|b")
    line = next(line for line in help_text([spec]).splitlines() if "`mode`" in line)
    assert line == "- `mode`: one of \\*fast\\*, a\\|b, \\<b\\>; default `a|b`"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("retrian", "retrain"),
        ("evalute", "evaluate"),
        ("Deplyo", "deploy"),
        ("overide", "override"),
    ],
)
def test_an_unknown_command_gets_a_did_you_mean_and_the_help(typed: str, meant: str) -> None:
    reply = unknown_command_reply(typed, SPECS)
    assert reply.startswith(f"Unknown command `/{typed}`: did you mean `/{meant}`?\n\n")
    assert reply.endswith(help_text(SPECS))


def test_an_unknown_command_far_from_any_gets_only_the_help() -> None:
    assert unknown_command_reply("shrug").startswith("Unknown command `/shrug`.\n\n### mlgate")


def test_a_very_long_unknown_name_is_shortened() -> None:
    reply = unknown_command_reply("a" * 10_000)
    assert reply.startswith("Unknown command `/" + "a" * 50 + "…`.")


def test_a_refusal_quotes_the_line_and_says_who_may_run_it() -> None:
    [command] = parse("  /retrain model=xgboost")
    assert refusal(command, "rita", "write", has="read") == (
        "> `/retrain model=xgboost`\n\n"
        "@rita, `/retrain` needs write permission or more on this repository; you have read."
        " Nothing was run."
    )


def test_a_deploy_refusal_names_the_approvers() -> None:
    [command] = parse("/deploy")
    reply = refusal(command, "@rita", COMMANDS["deploy"].who)
    assert reply.endswith(
        "@rita, `/deploy` may only be run by approvers named in deploy.approvers. Nothing was run."
    )


def test_a_quoted_line_cannot_mention_anyone_or_break_the_markdown() -> None:
    # In a code span, @team is not a mention; the span is longer than any backtick run inside.
    [command] = parse("/override ping @team with `code` and ``more``")
    quote = refusal(command, "rita", "write").splitlines()[0]
    assert quote == "> ``` /override ping @team with `code` and ``more`` ```"


def test_a_long_line_is_shortened_in_the_quote() -> None:
    [command] = parse("/override " + "x" * 2000)
    quote = refusal(command, "rita", "write").splitlines()[0]
    assert quote.endswith("x…`") and len(quote) < 320


def test_problems_reply_lists_the_problems_in_a_code_block() -> None:
    [command] = parse("/retrain epochs=abc note=```")
    problems = ["epochs=abc: not an integer", 'note: "```" @team']
    assert problems_reply(command, problems) == (
        "> ```` /retrain epochs=abc note=``` ````\n\n"
        "`/retrain` was not run:\n\n"
        '````text\nepochs=abc: not an integer\nnote: "```" @team\n````\n\n'
        "Write `/help` for the commands and what they accept."
    )


# --- properties --------------------------------------------------------------------------------

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_FRAGMENTS = [
    "/retrain a=1",
    "/evaluate",
    "/Deploy x",
    "/override why",
    "/retrain '",
    "```",
    "```py",
    "~~~",
    "````",
    "> ",
    ">",
    "- ",
    "1. ",
    "   ",
    "    ",
    "\t",
    "<!--",
    "-->",
    "---",
    "===",
    "# ",
    "text",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
]
_MARKDOWNISH = st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map("".join)
_LONG_LINES = st.builds(
    lambda piece, times: piece * times, st.text(max_size=8), st.integers(0, 3000)
)
_ANY_BODY = st.one_of(st.text(), _MARKDOWNISH, _LONG_LINES, st.lists(_MARKDOWNISH).map("\n".join))


def _lines(body: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", body)


@settings(max_examples=300, deadline=None)
@given(_ANY_BODY)
def test_parse_never_raises_and_returns_well_formed_commands(body: str) -> None:
    lines = _lines(body)
    for command in parse(body):
        assert _NAME.fullmatch(command.name)
        assert lines[command.lineno - 1] == command.line
        assert command.line.lstrip(" \t")[1:].lower().startswith(command.name)


@settings(max_examples=200, deadline=None)
@given(_ANY_BODY)
def test_nothing_inside_a_fence_is_a_command(body: str) -> None:
    # A tilde fence longer than any run of tildes in the body cannot be closed by it.
    longest = max((len(run) for run in re.findall("~+", body)), default=0)
    fence = "~" * max(3, longest + 1)
    comment = f"/evaluate\n{fence}\n{body}\n{fence}\n/help"
    assert parse(comment) == [
        Command("evaluate", line="/evaluate", lineno=1),
        Command("help", line="/help", lineno=len(_lines(comment))),
    ]


_VALUE = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _VALUE, max_size=5))
def test_shell_quoted_values_arrive_unchanged(pairs: dict[str, str]) -> None:
    line = "/retrain " + shlex.join(f"{key}={value}" for key, value in pairs.items())
    [command] = parse(line)
    assert command.problems == ()
    assert command.args == tuple(f"{key}={value}" for key, value in pairs.items())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=6))
def test_parse_retrain_never_raises(args: list[str]) -> None:
    result = parse_retrain(args, SPECS)
    assert isinstance(result, RetrainRequest) or all(isinstance(p, str) for p in result)


@settings(max_examples=200, deadline=None)
@given(_VALUE.filter(lambda reason: reason.strip() != ""))
def test_any_one_line_reason_is_kept_as_written(reason: str) -> None:
    [command] = parse(f"/override {reason}")
    assert command.text == reason.strip()
    assert command.problems == ()


def test_a_one_megabyte_comment_of_every_kind_of_line_parses() -> None:
    block = "\n".join(
        [
            "Some prose, then a command:",
            "/retrain model=xgboost epochs=50 note='two words'",
            "```python",
            "/deploy",
            "```",
            "> quoted /x",
            "> /deploy",
            "lazy",
            "",
            "- item",
            "  - > nested quote",
            "    /deploy",
            "",
            "<!--",
            "/deploy",
            "-->",
            "    /evaluate",
            "- - - " * 20 + "x",
            "> " * 30,
            "",
            "",
        ]
    )
    body = block * (1_000_000 // len(block) + 1) + "x" * 100_000 + "\n" + "\n" * 50_000
    assert len(body) > 1_000_000
    commands = parse(body)
    assert {command.name for command in commands} == {"retrain", "evaluate"}
    assert len(commands) == 2 * (1_000_000 // len(block) + 1)


# --- issue 14: the replies word for word, at their limits -------------------------------------

HELP_TABLE = """### mlgate commands

Write a command at the start of its own line in a comment on the pull request; several command \
lines (at most 10) run in order. Lines in code blocks, quotes and HTML comments are ignored.

| Command | What it does | Who may use it |
|---|---|---|
| `/evaluate [sha]` | Evaluate the model on this pull request's head commit and update the report; \
with a sha, only if that commit is still the head. | users with write permission or more |
| `/retrain [key=value ...]` | Retrain the model with these parameters (defaults for the ones \
not given); comma lists (`lr=0.1,0.01`) run every combination as candidates c1…cN, ranked in a \
leaderboard. | users with write permission or more |
| `/promote cN` | Commit candidate N's retrained outputs to this pull request's branch \
(same-repository pull requests only); the new head is then evaluated. | users with write \
permission or more |
| `/override <reason>` | Accept the failing quality gate of this commit; the reason is recorded. \
| users with write permission or more |
| `/deploy` | Approve deploying this pull request's model (same as the Approve deploy button). \
| approvers named in deploy.approvers |
| `/help` | Show this help. | anyone |

"""


def test_the_help_word_for_word_without_parameters() -> None:
    assert help_text() == HELP_TABLE + (
        "`/retrain` accepts no parameters: `retrain.parameters` in `.github/mlgate.yml`"
        " declares none."
    )


def test_the_help_word_for_word_with_parameters() -> None:
    specs = [
        Parameter("lr", "float", min=0.0, max=1.0, default="0.1"),
        Parameter("mode", choices=("a", "b"), required=True),
    ]
    assert help_text(specs) == HELP_TABLE + (
        "`/retrain` accepts these parameters (`retrain.parameters` in `.github/mlgate.yml`):\n\n"
        "- `lr`: a number from 0 to 1; default `0.1`\n"
        "- `mode`: one of a, b; required\n\n"
        'Put a value with spaces in quotes: `/retrain name="two words"`.'
    )


def test_a_problems_reply_fences_the_problems_with_three_backticks_or_one_more_than_theirs() -> (
    None
):
    [command] = parse("/retrain x")
    assert problems_reply(command, ["p1", "p2"]) == (
        "> `/retrain x`\n\n`/retrain` was not run:\n\n```text\np1\np2\n```\n\n"
        "Write `/help` for the commands and what they accept."
    )
    assert "\n````text\na ```` b\n````\n" not in problems_reply(command, ["a ```` b"])
    assert "\n`````text\na ```` b\n`````\n" in problems_reply(command, ["a ```` b"])


def test_a_refusal_strips_only_the_leading_at_of_the_login() -> None:
    [command] = parse("/deploy")
    reply = refusal(command, "@Xavier", "write")
    assert reply == (
        "> `/deploy`\n\n@Xavier, `/deploy` needs write permission or more on this repository."
        " Nothing was run."
    )
    assert refusal(command, "XX@", "write").startswith("> `/deploy`\n\n@XX@, ")


def test_a_quoted_line_of_300_characters_is_whole_and_301_is_cut() -> None:
    assert quote_line("/" + "a" * 299) == "> `/" + "a" * 299 + "`"
    assert quote_line("  /" + "a" * 300 + "  ") == "> `/" + "a" * 299 + "…`"


def test_an_unknown_name_of_50_characters_is_whole_and_51_is_cut() -> None:
    assert unknown_command_reply("b" * 50).startswith("Unknown command `/" + "b" * 50 + "`.\n\n")
    assert unknown_command_reply("b" * 51).startswith("Unknown command `/" + "b" * 50 + "…`.\n\n")


@pytest.mark.parametrize("line", ["/promote c1", "/promote C12", "/promote  c3 "])
def test_promote_names_one_candidate(line: str) -> None:
    [command] = parse(line)
    assert command.problems == ()
    assert command.args == (f"c{line.split()[1][1:]}",)


@pytest.mark.parametrize(
    "line",
    [
        "/promote",
        "/promote c0",
        "/promote c-1",
        "/promote c01",
        "/promote 2",
        "/promote c1 c2",
        "/promote c1; rm -rf /",
        "/promote c1`id`",
        "/promote c1234567",
        "/promote c\u0661",
    ],
)
def test_promote_refuses_anything_but_one_candidate_name(line: str) -> None:
    [command] = parse(line)
    assert command.args == ()
    [problem] = command.problems
    assert problem.startswith("/promote takes one candidate of the leaderboard, c1, c2, …")


def test_the_replies_about_an_old_head_name_both_commits_and_run_nothing() -> None:
    evaluate, deploy = parse("/evaluate abc1234\n/deploy")
    assert stale_reply([evaluate, deploy], "@alice", "def5678") == (
        "> `/evaluate abc1234`\n> `/deploy`\n\n@alice, the PR changed after your comment; review"
        " `def5678` and comment again. Nothing was run."
    )
    assert not_head_reply(evaluate, "alice", "abc1234", "def5678") == not_head_reply(
        evaluate, "@alice", "abc1234", "def5678"
    )
    assert not_head_reply(evaluate, "alice", "abc1234", "def5678") == (
        "> `/evaluate abc1234`\n\n@alice, `abc1234` is not the head of this pull request; its"
        " head is `def5678`: review it and comment `/evaluate def5678`. Nothing was run."
    )
    assert old_button_reply(deploy, "@alice", "abc1234", "def5678") == (
        "> `/deploy`\n\n@alice, that button is on `abc1234`, which is no longer the head of this"
        " pull request; review `def5678` and use the button on its check. Nothing was run."
    )
    # What the author wrote is quoted as code, so a mention or a backtick in it stays text.
    (tricky,) = parse("/override `x` @bob")
    assert stale_reply([tricky], "alice", "def5678").startswith(
        "> ``/override `x` @bob``\n\n@alice,"
    )


def test_a_login_starting_with_x_is_kept_whole_in_the_replies() -> None:
    (evaluate,) = parse("/evaluate")
    assert "\n\n@Xavier, the PR changed" in stale_reply([evaluate], "@Xavier", "def5678")
    assert "\n\n@Xavier, `abc1234` is not" in not_head_reply(evaluate, "@Xavier", "abc1234", "d")
    assert "\n\n@Xavier, that button" in old_button_reply(evaluate, "@Xavier", "abc1234", "d")


def test_evaluate_with_a_word_that_is_no_sha_says_exactly_what_it_takes() -> None:
    (command,) = parse("/evaluate xyz")
    assert command.problems == (
        '/evaluate takes a commit sha (7 to 40 hexadecimal digits) or nothing, but "xyz" follows'
        " it; write /evaluate alone, or /evaluate <sha> to approve that commit only",
    )
