"""`mlgate ci`: the report and quality gate as a step of any CI, with a plain token, no server."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.core.config import load_config
from bot.core.report import (
    MARKER,
    annotation_batches,
    render_check_run,
    render_comment,
    report_verdict,
)
from bot.core.setting_hints import summary_with_hints
from bot.errors import CiSetupError, GitHubError, LocalGitError, UnknownRevision
from bot.github.github_client import GitHubClient
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.evaluation_decisions import irrelevant_check
from bot.runs.local_git import GitRepo, LocalComparison, compare_local
from bot.runs.publication import CheckOutput, Publication

# Who a workflow job's GITHUB_TOKEN comments as. An installation token cannot ask GitHub who
# it is (`GET /user` answers 403), and the job token is the GitHub Actions App's.
ACTIONS_LOGIN = "github-actions[bot]"
# GitHub's prefix of installation tokens (a job's GITHUB_TOKEN is one).
INSTALLATION_TOKEN_PREFIX = "ghs_"
# What the job must do so that both revisions are in its checkout.
FETCH_FIX = (
    "in GitHub Actions, check out with `actions/checkout` and `fetch-depth: 0`; elsewhere, "
    "fetch both commits first (`git fetch origin <base> <head>`, or `git fetch --unshallow`)"
)
# Commit statuses have four states; a check's conclusion maps onto them.
STATUS_STATES = {"success": "success", "failure": "failure", "skipped": "success"}
STATUS_DESCRIPTION_LIMIT = 140  # "The maximum description length is 140 characters"
# Exit statuses of `mlgate ci`: a usage or setup error is 2, as for `mlgate report`.
GATE_FAILED = 1


@dataclass(frozen=True)
class CiTarget:
    """The PR a CI step reports on: where to write, and the two commits it compares.

    `head` is the PR's head commit (the check goes there, whatever the job checked out: on a
    `pull_request` event that is a merge commit); `base` is a revision of the checkout.
    """

    repo: str
    number: int
    base: str
    head: str


def read_event(path: str) -> dict[str, Any]:
    """The webhook payload GitHub Actions wrote to GITHUB_EVENT_PATH."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CiSetupError(f"GITHUB_EVENT_PATH={path}: cannot read the event: {exc}") from exc
    if not isinstance(data, dict):
        raise CiSetupError(f"GITHUB_EVENT_PATH={path}: the event is not a JSON object")
    return data


def target_from_event(
    event: Mapping[str, Any], repo: str | None, base: str | None
) -> CiTarget | None:
    """The PR of a `pull_request` (or `pull_request_target`) event; None for any other event.
    `base` (a revision) replaces the PR's base commit; `repo` the event's repository."""
    pull = event.get("pull_request")
    if not isinstance(pull, dict):
        return None
    try:
        name = repo or str(event["repository"]["full_name"])
        return CiTarget(
            repo=name,
            number=int(pull["number"]),
            base=base or str(pull["base"]["sha"]),
            head=str(pull["head"]["sha"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CiSetupError(f"the pull_request event lacks {exc}: is it GitHub's?") from exc


def target_from_api(
    gh: GitHubClient, repo: str, number: int, base: str | None, head: str | None
) -> CiTarget:
    """The PR named by options (any CI): its head and base commits from the API unless given."""
    if base is None or head is None:
        pull = gh.get_pull(repo, number)
        base = base or str(pull["base"]["sha"])
        head = head or str(pull["head"]["sha"])
    return CiTarget(repo, number, base, head)


def local_commit(git: GitRepo, rev: str) -> str:
    """The full sha of `rev` in the checkout: as given, else `origin/<rev>` (a CI checkout
    often has the remote's branches only); CiSetupError with the fetch to do otherwise."""
    try:
        return git.resolve(rev)
    except UnknownRevision as first:
        try:
            return git.resolve(f"origin/{rev}")
        except UnknownRevision:
            raise CiSetupError(
                f"{rev} is not in this checkout ({first.complaint}): {FETCH_FIX}"
            ) from first


@dataclass(frozen=True)
class CiReport:
    """What a CI step found and decided: the comparison, and the Publication to write."""

    local: LocalComparison
    publication: Publication
    markdown: str  # what the job log and the job summary show

    @property
    def failed(self) -> bool:
        return report_verdict(self.local.evaluation) in ("failed", "error")


def evaluate(git: GitRepo, target: CiTarget, details_url: str | None = None) -> CiReport:
    """`mlgate report`'s comparison of the PR's head with its base, from the checkout, and
    what the bot would publish for it: the sticky comment and `mlgate/quality` (without the
    App's buttons, which would call no server), or only a skipped check."""
    base, head = local_commit(git, target.base), local_commit(git, target.head)
    try:
        local = compare_local(git, base, head)
    except LocalGitError as exc:
        raise CiSetupError(f"{exc}: {FETCH_FIX}") from exc
    evaluation = local.evaluation
    publication = Publication(target.repo, target.number, report_verdict(evaluation))
    if evaluation.skipped is not None:
        # As the App: a skipped check that names the triggers and the setting, no comment.
        config = load_config(git.read, base)
        changed = len(git.changed(base, head))
        check = irrelevant_check(head, changed, config.triggers, actions=())
        return CiReport(local, publication.with_checks([check]), check.summary)
    output = render_check_run(evaluation)
    check = CheckOutput(
        QUALITY_CHECK,
        head,
        output.title,
        summary_with_hints(output.summary, evaluation.gates),
        output.conclusion,
        annotations=output.annotations,
        actions=(),
        details_url=details_url,
    )
    comment = render_comment(evaluation)
    shown = replace(publication, comment=comment).with_checks([check])
    return CiReport(local, shown, comment)


@dataclass
class Written:
    """What the token could write, for the job log: each line says what happened."""

    lines: list[str] = field(default_factory=list)


def token_login(gh: GitHubClient, token: str) -> str:
    """Who the token comments as: the GitHub Actions App for a job's token (an installation
    token), else the token's user."""
    if token.startswith(INSTALLATION_TOKEN_PREFIX):
        return ACTIONS_LOGIN
    try:
        return str(gh.get_json("/user")["login"])
    except GitHubError as exc:
        if exc.status == 403:
            return ACTIONS_LOGIN
        raise


def _refused(exc: GitHubError) -> bool:
    # The token lacks the permission: a fork's read-only GITHUB_TOKEN, a job without
    # `checks: write`, a personal token (which may never create check runs).
    return exc.status == 403


class TokenPublisher:
    """Writes a Publication with one plain token and nothing kept between runs: the sticky
    comment is found again by its marker among the comments of the token's own user (never
    another bot's), and `mlgate/quality` is a new check run, or a commit status where the
    token may not create check runs."""

    def __init__(self, gh: GitHubClient, login: Callable[[], str]) -> None:
        self.gh = gh
        self._login = login

    def publish(self, publication: Publication) -> Written:
        written = Written()
        if publication.comment is not None:
            assert publication.number is not None, "the sticky comment is a PR's"
            self._comment(publication.repo, publication.number, publication.comment, written)
        for check in publication.checks:
            self._check(publication.repo, check, written)
        return written

    def _comment(self, repo: str, number: int, body: str, written: Written) -> None:
        try:
            login = self._login().lower()
            ours = next(
                (
                    c
                    for c in self.gh.list_comments(repo, number)
                    if str((c.get("user") or {}).get("login", "")).lower() == login
                    and str(c.get("body", "")).startswith(MARKER)
                ),
                None,
            )
            if ours is not None:
                answer = self.gh.update_comment(repo, int(ours["id"]), body)
                written.lines.append(f"comment edited: {answer.get('html_url', ours['id'])}")
            else:
                answer = self.gh.create_comment(repo, number, body)
                written.lines.append(f"comment written: {answer.get('html_url', answer['id'])}")
        except GitHubError as exc:
            if not _refused(exc):
                raise
            written.lines.append(
                f"comment not written: GitHub refused it ({exc.status}). A pull request from "
                "a fork gets a read-only GITHUB_TOKEN; the report is in this log (and the job "
                "summary) instead."
            )

    def _check(self, repo: str, check: CheckOutput, written: Written) -> None:
        conclusion = check.conclusion or "neutral"
        output: dict[str, Any] = {"title": check.title, "summary": check.summary}
        batches = annotation_batches(check.annotations) or [[]]
        fields: dict[str, Any] = {"status": "completed", "conclusion": conclusion}
        fields["output"] = output | ({"annotations": batches[0]} if batches[0] else {})
        if check.details_url:
            fields["details_url"] = check.details_url
        try:
            created = self.gh.create_check_run(repo, check.name, check.sha, **fields)
            for batch in batches[1:]:
                self.gh.update_check_run(
                    repo, int(created["id"]), output=output | {"annotations": batch}
                )
            written.lines.append(f"check {check.name}: {conclusion}")
            return
        except GitHubError as exc:
            if not _refused(exc):
                raise
            why = exc.status
        state = STATUS_STATES.get(conclusion, "failure")
        try:
            self.gh.create_commit_status(
                repo,
                check.sha,
                state,
                context=check.name,
                description=check.title[:STATUS_DESCRIPTION_LIMIT],
                target_url=check.details_url,
            )
            written.lines.append(
                f"check {check.name}: GitHub refused a check run ({why}; the job needs "
                f"`checks: write`), so a commit status says {state}"
            )
        except GitHubError as exc:
            if not _refused(exc):
                raise
            written.lines.append(
                f"check {check.name}: not written; GitHub refused a check run ({why}) and a "
                f"commit status ({exc.status}). The job's exit status is the gate."
            )


def actions_escape(text: str) -> str:
    """A workflow command's message as the runner reads it: %, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def untrusted_block(text: str) -> list[str]:
    """Lines that print `text` in a GitHub Actions log with workflow commands off: a metric
    name or a file from the PR can never be read as `::command::` by the runner."""
    fence = secrets.token_hex(16)
    return [f"::stop-commands::{fence}", text.rstrip("\n"), f"::{fence}::"]


@dataclass(frozen=True)
class CiOptions:
    """`mlgate ci`'s options; None where the CI's environment or the PR gives the value."""

    token: str | None
    api_url: str
    checkout: Path = Path(".")
    repo: str | None = None
    number: int | None = None
    base: str | None = None
    head: str | None = None


def _details_url(env: Mapping[str, str]) -> str | None:
    """The workflow run's page, where a GitHub Actions check links to."""
    parts = [env.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    server, repo, run_id = parts
    if not (server and repo and run_id):
        return None
    return f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"


def _target(gh: GitHubClient, options: CiOptions, env: Mapping[str, str]) -> CiTarget | None:
    repo = options.repo or env.get("GITHUB_REPOSITORY") or None
    if options.number is not None:
        if repo is None:
            raise CiSetupError("--pr needs --repo OWNER/NAME (or GITHUB_REPOSITORY)")
        return target_from_api(gh, repo, options.number, options.base, options.head)
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise CiSetupError(
            "no pull request to report on: in GitHub Actions, run on a `pull_request` event; "
            "in any other CI, pass --repo OWNER/NAME --pr NUMBER (and --base)"
        )
    target = target_from_event(read_event(path), repo, options.base)
    if target is not None and options.head is not None:
        target = replace(target, head=options.head)
    return target


def run(
    options: CiOptions,
    env: Mapping[str, str],
    out: Callable[[str], None],
    err: Callable[[str], None],
) -> int:
    """One CI step: compare, print the report, write the comment and `mlgate/quality`.

    Returns the exit status: 0, or GATE_FAILED when a gate failed or the evaluation did;
    CiSetupError (the CLI's 2) when something must be fixed first. In GitHub Actions the
    report is printed with workflow commands off, and added to the job summary.
    """
    if not options.token:
        raise CiSetupError(
            "no token: pass --token or set GITHUB_TOKEN (in GitHub Actions: "
            "`GITHUB_TOKEN: ${{ github.token }}`, with `pull-requests: write` and "
            "`checks: write` permissions)"
        )
    gh = GitHubClient.with_token(options.api_url, options.token)
    target = _target(gh, options, env)
    actions = env.get("GITHUB_ACTIONS") == "true"
    if target is None:
        event = env.get("GITHUB_EVENT_NAME") or "this"
        out(f"mlgate ci: the {event} event is not a pull request's; nothing to report.")
        return 0
    with GitRepo.open(options.checkout) as git:
        report = evaluate(git, target, _details_url(env) if actions else None)
    evaluation = report.local.evaluation
    out(
        f"mlgate ci: {target.repo}#{target.number}, head {evaluation.head_sha[:7]} compared "
        f"with base {evaluation.base_sha[:7]}"
    )
    warnings = [f"WARNING: {message}" for message in report.local.messages]
    if actions:
        # Warnings name the PR's files too: they go inside the block, on the same stream.
        out("::group::mlgate report")
        for line in untrusted_block("\n".join([*warnings, report.markdown])):
            out(line)
        out("::endgroup::")
    else:
        for warning in warnings:
            err(warning)
        out(report.markdown.rstrip("\n"))
    summary = env.get("GITHUB_STEP_SUMMARY")
    if actions and summary:
        with open(summary, "a", encoding="utf-8") as file:
            file.write(report.markdown.rstrip("\n") + "\n")
    token = options.token
    written = TokenPublisher(gh, lambda: token_login(gh, token)).publish(report.publication)
    for line in written.lines:
        out(line)
    title = render_check_run(evaluation).title
    if report.failed:
        if actions:
            out(f"::error::{actions_escape(f'mlgate/quality: {title}')}")
        out(f"{title} (exit status {GATE_FAILED})")
        return GATE_FAILED
    out(title)
    return 0
