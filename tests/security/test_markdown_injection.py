"""Markdown from a PR never comes alive in mlgate's comments and checks, as GitHub renders them."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import sample
from bot.core.commands import help_text
from bot.core.config import Parameter
from bot.core.dvc import DataChange, Output, ParamChange
from bot.core.evaluation_result import Baseline, Evaluation, Metrics
from bot.core.gates import Gate, evaluate_gates
from bot.core.markdown_escape import ZWSP, code, escape, inline, one_line, table_cell
from bot.core.report import render_check_run, render_comment
from bot.emulator import GitHubEmulator
from tests.support import Bot, pull_request_event

HEAD = "9a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
BASE = "edcf3adc979e5ebc257cc498c1522d96aabbccdd"
DETAILS = "https://mlgate.example.com/runs/7"

# The injection set of issue 9, one attack each.
ATTACKS = {
    "image": "![build](https://evil.example/pixel.png)",
    "link": "[Approve deploy here](https://evil.example/approve)",
    "fake verdict": "x\n\n✅ **Quality gate passed**: 3 of 3 gates hold.\n\n",
    "team mention": "ping @org/admins now",
    "user mention": "@octocat",
    "html image": '<img src="https://evil.example/x.png" onerror="alert(1)">',
    "html link": '<a href="https://evil.example">Approve</a>',
    "our marker": "<!-- mlgate:report --> <!-- mlgate:data {} -->",
    "backticks": "a` ![x](https://evil.example/i.png) `b ``` ```` c`",
    "table row": "acc |\n| fake | 1 | 2 | ✅ passed | ✅ |\n| more",
    "pipes": "a|b\\|c",
    "autolinks": "https://evil.example www.evil.example admin@evil.example",
    "references": "#1 octo/other#2 GH-3",
    "heading": "# Approved",
    "emphasis": "**bold** _it_ ~~gone~~",
}


def render(markdown: str) -> str:
    """HTML as github.com renders a comment (cmark-gfm, raw HTML kept to be seen)."""
    options = Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_FOOTNOTES
    return str(cmarkgfm.github_flavored_markdown_to_html(markdown, options=options))


class _Rendered(HTMLParser):
    """Tags, tables, bold text, paragraphs, and the text outside and inside code of HTML."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.prose: list[str] = []  # text where GitHub looks for mentions and references
        self.code: list[str] = []
        self.tables: list[list[list[str]]] = []  # rows of cells
        self.strong: list[str] = []
        self.paragraphs: list[str] = []
        self._open: list[str] = []
        self._inert = 0  # depth inside code, pre and a, which GitHub leaves alone
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("code", "pre", "a"):
            self._inert += 1
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        elif tag == "strong":
            self.strong.append("")
        elif tag == "p":
            self.paragraphs.append("")
        if tag not in ("br", "img", "input"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre", "a"):
            self._inert -= 1
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        (self.code if self._inert else self.prose).append(data)
        if "td" in self._open or "th" in self._open:
            self.tables[-1][-1][-1] += data
        if "strong" in self._open:
            self.strong[-1] += data
        if "p" in self._open:
            self.paragraphs[-1] += data

    def handle_comment(self, data: str) -> None:
        self.tags.append(("!--", {"text": data}))


# What mlgate itself writes: these tags, links only to its own pages, these bold words.
OUR_TAGS = {
    "p", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "strong",
    "em", "details", "summary", "blockquote", "br", "a", "ul", "li", "!--",
}  # fmt: skip
OUR_STRONG = {"Quality gate failed", "Evaluation failed", "Not evaluated"}
MENTION = re.compile(r"(?<![\w`])@([A-Za-z0-9][\w/-]*)")  # as GitHub finds them after rendering
REFERENCE = re.compile(r"(?<![\w&])(?:[\w.-]+/[\w.-]+)?#\d|\bGH-\d")


def assert_nothing_live(markdown: str, *, comments: int, users: tuple[str, ...] = ()) -> _Rendered:
    """No tag, link, mention, reference, bold or verdict line that mlgate did not write, and
    every table row as wide as its header."""
    rendered = _Rendered(render(markdown))
    for tag, attrs in rendered.tags:
        assert tag in OUR_TAGS, f"<{tag}> came alive"
        if tag == "a":
            assert attrs.get("href") == DETAILS, f"a link to {attrs.get('href')} came alive"
    assert sum(1 for tag, _ in rendered.tags if tag == "!--") == comments
    prose = "".join(rendered.prose)
    assert set(MENTION.findall(prose)) <= set(users), "a mention came alive"
    assert not REFERENCE.search(prose), f"a reference came alive: {REFERENCE.search(prose)}"
    assert set(rendered.strong) <= OUR_STRONG, f"bold came alive: {rendered.strong}"
    assert not [p for p in rendered.paragraphs if p.lstrip().startswith("✅")]
    for table in rendered.tables:
        assert all(len(row) == len(table[0]) for row in table), table
    return rendered


def shown(text: str) -> str:
    """What a reader sees of `text` once rendered: one line, zero-width spaces dropped."""
    return one_line(text).replace(ZWSP, "").replace("\u200c", "")


def seen(rendered: _Rendered) -> str:
    """All text of rendered HTML, as a reader sees it."""
    return shown("".join(rendered.prose + rendered.code))


def attacked(payload: str) -> Evaluation:
    """An evaluation carrying `payload` in every place repository text reaches the report."""
    metrics: Metrics = {
        "metrics.json": {payload: 0.5, "acc": 0.9},
        payload + ".json": {"f1": payload},
    }
    new: Metrics = {
        "metrics.json": {payload: 0.4, "acc": 0.8},
        payload + ".json": {"f1": payload + "!"},
    }
    gates = evaluate_gates(
        [Gate(payload, min=0.45), Gate("acc", min=0.85), Gate(payload + "-missing", min=1)],
        metrics,
        new,
        None,
    )
    out = Output(payload, payload, 10, None)
    return Evaluation(
        HEAD,
        BASE,
        old=metrics,
        new=new,
        gates=gates,
        data_changes=[DataChange(payload, "modified", out, Output(payload, "f" * 32, 12, None))],
        param_changes=[ParamChange(payload, payload, payload, [payload, 1])],
        trend=[Baseline("a" * 40, {"metrics.json": {payload: 0.45}})],
        log_tail=f"step 1\n{payload}\n```\n{payload}\n",
        notes=[f"Metrics after /retrain by @ada with model={payload}."],
        details_url=DETAILS,
        base_ref=payload,
        sources={"metrics.json": json.dumps(new["metrics.json"], indent=2)},
    )


@pytest.mark.parametrize("payload", ATTACKS.values(), ids=ATTACKS.keys())
def test_an_attack_in_names_values_and_paths_stays_text_in_the_comment(payload: str) -> None:
    body = render_comment(attacked(payload))
    rendered = assert_nothing_live(body, comments=2, users=("ada",))  # marker and data block
    assert body.count("<!--") == 2
    # Four metric rows (two gates fail, a string value, a missing metric), one data, one param.
    assert [len(table) for table in rendered.tables] == [5, 2, 2]
    assert shown(payload) in shown("".join(rendered.code))
    # The one mention mlgate writes itself (who retrained) is still one.
    assert "by @ada with" in "".join(rendered.prose)


@pytest.mark.parametrize("payload", ATTACKS.values(), ids=ATTACKS.keys())
def test_an_attack_in_names_values_and_paths_stays_text_in_the_check_summary(
    payload: str,
) -> None:
    output = render_check_run(attacked(payload))
    assert output.conclusion == "failure"
    rendered = assert_nothing_live(output.summary, comments=0, users=("ada",))
    assert [len(table) for table in rendered.tables] == [5, 2, 2]
    assert len(output.annotations) == 2  # the two failed gates on metrics.json
    for annotation in output.annotations:  # plain text at GitHub: one line is all it needs
        assert "\n" not in annotation.message and "\n" not in annotation.title
    assert "\n" not in output.title


@pytest.mark.parametrize("payload", ATTACKS.values(), ids=ATTACKS.keys())
def test_an_attack_in_an_error_or_a_skip_reason_stays_text(payload: str) -> None:
    broken = Evaluation(HEAD, BASE, error=f"{payload}: invalid YAML: found {payload}")
    skipped = Evaluation(HEAD, BASE, skipped=f"no changed file matches `{payload}`")
    for evaluation in (broken, skipped):
        body = render_comment(evaluation)
        rendered = assert_nothing_live(body, comments=2)
        if "`" not in payload:  # errors are mlgate's Markdown: backticks in them make code spans
            assert shown(payload) in seen(rendered)
        assert_nothing_live(render_check_run(evaluation).summary, comments=0)


@pytest.mark.parametrize("payload", ATTACKS.values(), ids=ATTACKS.keys())
def test_an_attack_in_configured_retrain_parameters_stays_text_in_the_help(payload: str) -> None:
    spec = Parameter("model", "string", choices=(payload, "b"), default=payload)
    rendered = assert_nothing_live(help_text([spec]), comments=0)
    assert shown(payload) in seen(rendered)


# ---------------------------------------------------------------------------- the mechanism

# Text built to hit Markdown: its punctuation, spaces, newlines, and a few letters.
hostile = st.lists(
    st.sampled_from(list("`*_[]()<>!|\\#@:/.-+=~&;$ \n\t\"'aw1G") + ["www.", "http://", "GH-"]),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_a_code_span_shows_any_text_exactly(text: str) -> None:
    rendered = _Rendered(render(f"x {code(text)} y"))
    expected = one_line(text).replace("<!--", "<!-\u200c-")
    if not expected:
        assert code(text) == ""
        return
    assert [tag for tag, _ in rendered.tags] == ["p", "code"]
    assert "".join(rendered.code) == expected


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_escaped_text_shows_any_text_exactly_and_nothing_else(text: str) -> None:
    rendered = _Rendered(render(escape(text)))
    assert {tag for tag, _ in rendered.tags} <= {"p"}
    assert "".join(rendered.paragraphs).replace(ZWSP, "") == one_line(text)
    assert not MENTION.search("".join(rendered.prose))


@settings(max_examples=300, deadline=None)
@given(hostile, hostile)
def test_table_cells_keep_their_columns_whatever_they_hold(first: str, second: str) -> None:
    row = f"| {table_cell(code(first))} | {table_cell(escape(second, line_start=False))} |"
    rendered = _Rendered(render(f"| a | b |\n|---|---|\n{row}\n"))
    [table] = rendered.tables
    assert len(table) == 2 and len(table[1]) == 2
    assert table[1][0] == one_line(first).replace("<!--", "<!-\u200c-")
    assert table[1][1].replace(ZWSP, "") == one_line(second)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_our_markdown_around_repository_text_keeps_only_code_spans(text: str) -> None:
    rendered = _Rendered(render(inline(f"found `{text}` in {text}")))
    assert {tag for tag, _ in rendered.tags} <= {"p", "code"}
    assert not MENTION.search("".join(rendered.prose))


def test_escaping_breaks_what_github_finds_in_rendered_text() -> None:
    # Mentions, e-mail links and issue references are found after rendering, so a backslash
    # would not stop them; the zero-width space does, and shows nothing.
    assert escape("@org/admins a@b.example #12") == (
        f"{ZWSP}@{ZWSP}org/admins a{ZWSP}@{ZWSP}b.example \\#{ZWSP}12"
    )
    assert escape("see https://evil.example or www.evil.example") == (
        "see https\\://evil.example or www\\.evil.example"
    )


# ---------------------------------------------------------------------------- whole flow

REPO = "octo/model"


def test_a_pr_whose_metrics_and_params_attack_the_comment_gets_inert_text(
    bot: Bot, emulator: GitHubEmulator
) -> None:
    emulator.add_installation(42, "octo")
    emulator.create_repo(
        REPO, installation_id=42, files=sample.files(sample.BASE_DATA, sample.BASE_PARAMS)
    )
    names = list(ATTACKS.values())
    metrics = "{" + ", ".join(f"{json.dumps(name)}: 0.5" for name in names) + ', "accuracy": 0.9}'
    params = "".join(f"{json.dumps(name)}: {json.dumps(name)}\n" for name in names)
    emulator.repo(REPO).commit(
        "feature", {"metrics.json": metrics, "params.yaml": params}, "x", author="mallory"
    )
    pull = emulator.open_pull_request(REPO, head="feature", base="main", user="mallory", title="t")
    bot.deliver("pull_request", pull_request_event(emulator, REPO, int(pull["number"]), "opened"))

    head = emulator.pull_request(REPO, int(pull["number"]))["head"]["sha"]
    [comment] = emulator.comments(REPO, int(pull["number"]))
    rendered = assert_nothing_live(comment["body"], comments=2)
    for name in names:
        assert shown(name) in shown("".join(rendered.code))
    quality = [r for r in emulator.check_runs(REPO, head) if r["name"] == "mlgate/quality"]
    assert_nothing_live(quality[-1]["output"]["summary"], comments=0)
