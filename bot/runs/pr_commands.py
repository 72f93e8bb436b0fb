"""PR commands (a comment's or a button's): each decides; a comment publishes once, one reply."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from bot.core import commands
from bot.core.config import RepoConfig, load_config
from bot.core.experiment_matrix import Matrix, build_matrix, split_words
from bot.core.permissions import at_least, level
from bot.core.pr_facts import PullRequest
from bot.core.routing import Event
from bot.errors import RepoConfigError
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs import deploy, experiment_runs, promotion
from bot.runs import deploy_decisions as deploying
from bot.runs.check_runs import QUALITY_CHECK
from bot.runs.context import Context
from bot.runs.evaluation import Evaluator, author_trusted
from bot.runs.evaluation_queue import EVALUATE, queued
from bot.runs.head_records import HeadRecords
from bot.runs.publication import (
    ACCEPTED,
    DONE,
    FAILED,
    REFUSED_DEPLOY,
    CheckOutput,
    Publication,
    Reaction,
)
from bot.runs.publisher import Publisher
from bot.state import audit, permission_cache
from bot.state.pr_heads import first_seen, record_head

log = logging.getLogger(__name__)

# GitHub refuses a comment over 65,536 characters; a reply is cut below that, with a note.
REPLY_LIMIT = 65_000


@dataclass
class Conversation:
    """One comment's (or button's) commands: the PR they act on, who asked, and what they
    decided so far. Audit entries wait in `records.pending`, where later decisions see them."""

    ctx: Context
    gh: GitHubClient
    event: Event
    pr: PullRequest
    pull: dict[str, Any]  # the PR as GitHub answered when the commands were read
    user: str
    comment_id: int | None  # None for a check-run button: nothing to react on
    records: HeadRecords
    clicked_sha: str | None = None  # the head an "Approve deploy" button was shown on
    decided: Publication = field(init=False)
    _said: list[str] = field(init=False, default_factory=list)
    _contributors: set[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.decided = Publication(self.pr.repo, self.pr.number)

    def add(self, later: Publication) -> None:
        self.records.pending.extend(later.audit)
        self.decided = self.decided.then(replace(later, audit=()))

    def publication(self) -> Publication:
        """Everything the commands decided, their audit entries in the order decided; one
        reply, cut to what GitHub accepts."""
        reply = self.decided.reply
        if reply is not None and len(reply) > REPLY_LIMIT:
            reply = reply[:REPLY_LIMIT] + "\n\n(This reply was cut: GitHub refuses longer ones.)"
        reply_to = self.comment_id if reply is not None else None
        return replace(
            self.decided, reply=reply, reply_to=reply_to, audit=tuple(self.records.pending)
        )

    def reply(self, body: str) -> None:
        """Add `body` to the comment's one reply; the same answer twice (`/help` ten times) is
        said once."""
        if body in self._said:
            return
        self._said.append(body)
        self.add(Publication(self.pr.repo, self.pr.number, reply=body))

    def react(self, content: str) -> None:
        if self.comment_id is None:
            return
        reaction = Reaction(self.comment_id, content)
        if reaction in self.decided.reactions:
            return  # GitHub keeps one of each per user: a second request is a wasted call
        self.add(Publication(self.pr.repo, self.pr.number, reactions=(reaction,)))

    def contributors(self) -> set[str]:
        """Logins of the authors and committers of the PR's commits, asked once."""
        if self._contributors is None:
            found: set[str] = set()
            for commit in self.gh.list_pull_commits(self.pr.repo, self.pr.number):
                for role in ("author", "committer"):
                    account = commit.get(role)
                    if isinstance(account, dict) and account.get("login"):
                        found.add(str(account["login"]))
            self._contributors = found
        return self._contributors

    def permission(self) -> str:
        """The commenter's level, asked of GitHub (never author_association), cached briefly."""
        cached = permission_cache.cached_level(self.ctx.redis, self.pr.repo, self.user)
        if cached is not None:
            return cached
        found = level(self.gh.collaborator_permission(self.pr.repo, self.user))
        permission_cache.remember_level(self.ctx.redis, self.pr.repo, self.user, found)
        return found

    def audit(
        self, kind: str, detail: str = "", *, sha: str | None = None, remember: str | None = None
    ) -> audit.Entry:
        """An audit entry by the commenter on the head (or `sha`), stamped now."""
        entry = audit.Entry(
            kind, self.user, self.pr.number, sha or self.pr.head_sha, detail, time.time()
        )
        self.records.add(entry, remember)
        return entry

    def refuse(self, command: commands.Command, required: str, has: str | None) -> None:
        self.audit("refuse", f"/{command.name}: needs {required}, has {has or 'unknown'}")
        self.reply(commands.refusal(command, self.user, required, has))
        self.react(FAILED)

    def queue_run(self, note: str, **job: object) -> None:
        """A run for this command only: two commands in a row queue one behind the other."""
        origin = f"comment{self.comment_id}" if self.comment_id else f"button{uuid.uuid4().hex}"
        assert self.event.installation_id is not None
        run = queued(
            self.pr,
            self.event.installation_id,
            note,
            kind=f"{EVALUATE}-{origin}",
            forced=True,
            comment_id=self.comment_id,
            **job,
        )
        self.add(run)

    def evaluator(self) -> Evaluator:
        return Evaluator(self.ctx.settings, self.ctx.redis, self.gh, token=lambda: "")


def run_comment(
    event: Event,
    ctx: Context,
    number: int,
    user: str,
    comment_id: int,
    parsed: commands.CommentCommands,
    written_at: float | None,
) -> str:
    """Run a comment's commands, in order, as `user` on PR `number`; publish what they
    decided once, in one reply. Returns the last command's outcome.

    A command acts on the head only if the comment was written (`written_at`, its
    `created_at`) once that head was there: a push between a review and its comment's
    processing must not be approved by it. Such a comment is refused, naming the new head.
    """
    talk, config = _conversation(event, ctx, number, user, comment_id)
    try:
        acting = [c for c in parsed.commands if c.name in HANDLERS and not c.problems]
        stale = bool(acting) and _written_before_head(talk, written_at)
        if stale:
            for command in acting:
                talk.audit("refuse", f"/{command.name}: written before {talk.pr.short_sha}")
            talk.reply(commands.stale_reply(acting, talk.user, talk.pr.short_sha))
            talk.react(FAILED)
        for command in parsed.commands:
            if not (stale and command in acting):
                _run(talk, command, config)
        note = parsed.ignored_note()
        if note is not None:
            talk.reply(note)
    finally:
        # Should a command fail half-way (GitHub, Semaphore), what the commands before it
        # decided, and a deploy that started, are still written.
        outcome = Publisher(talk.gh, ctx.redis).publish(talk.publication())
    return outcome


def _written_before_head(talk: Conversation, written_at: float | None) -> bool:
    """Whether the comment was written before the PR's current head appeared (a comment
    without its time is taken as written before)."""
    appeared = first_seen(
        talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha, time.time()
    )
    return written_at is None or written_at < appeared


def press_button(event: Event, ctx: Context, number: int, head_sha: str, identifier: str) -> str:
    """A check-run button is its command without arguments: the same checks, the same run,
    on the head its check was shown on only."""
    talk, config = _conversation(event, ctx, number, event.payload["sender"]["login"], None)
    if identifier == deploying.APPROVE:
        # An approval is of one head only: on an old one it is refused, and the refusal is
        # listed on that head's mlgate/deploy.
        talk.clicked_sha = head_sha
        command = commands.Command("deploy", line="Approve deploy (button)")
    else:
        label = {"evaluate": "Re-evaluate", "retrain": "Retrain"}[identifier]
        command = commands.Command(identifier, line=f"{label} (button)")
    try:
        if identifier != deploying.APPROVE and talk.pr.head_sha != head_sha:
            log.info("button on an old head refused", extra=event.log_extra())
            talk.audit("refuse", f"/{command.name}: button on {head_sha[:7]}", sha=head_sha)
            talk.reply(
                commands.old_button_reply(command, talk.user, head_sha[:7], talk.pr.short_sha)
            )
            talk.add(Publication(talk.pr.repo, talk.pr.number, outcome="old-head"))
        else:
            _run(talk, command, config)
    finally:
        outcome = Publisher(talk.gh, ctx.redis).publish(talk.publication())
    return outcome


def _conversation(
    event: Event, ctx: Context, number: int, user: str, comment_id: int | None
) -> tuple[Conversation, RepoConfig | None]:
    gh = ctx.client(event)
    repo = event.repo
    assert repo is not None
    pull = gh.get_pull(repo, number)
    pr = PullRequest.from_api(pull, event.payload["repository"])
    records = HeadRecords(ctx.redis, pr.repo, pr.number)
    talk = Conversation(ctx, gh, event, pr, pull, user, comment_id, records)
    try:
        config: RepoConfig | None = load_config(RepoFiles(gh, ctx.redis, repo).read, pr.config_ref)
    except RepoConfigError:
        config = None
    return talk, config


def _run(talk: Conversation, command: commands.Command, config: RepoConfig | None) -> None:
    parameters = config.retrain.parameters if config is not None else ()
    spec = commands.COMMANDS.get(command.name)
    if spec is None:
        talk.reply(commands.unknown_command_reply(command.name, parameters))
        talk.react(FAILED)
        return
    if command.problems:
        talk.reply(commands.problems_reply(command, command.problems))
        talk.react(FAILED)
        return
    if command.name == "help":
        talk.react(ACCEPTED)
        talk.reply(commands.help_text(parameters))
        return
    if config is None:
        talk.reply(
            f"`/{command.name}` was not run: `.github/mlgate.yml` on "
            f"`{talk.pr.default_branch}` is invalid; see the mlgate/config check."
        )
        talk.react(FAILED)
        return
    if spec.permission is not None:
        has = talk.permission()
        if not at_least(has, spec.permission):
            talk.refuse(command, spec.permission, has)
            return
    HANDLERS[command.name](talk, command, config)


def _evaluate(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """Re-evaluate the head; for an untrusted PR it also approves running this very sha.
    `/evaluate <sha>` does so only if that sha is still the head."""
    if command.args and not talk.pr.head_sha.startswith(command.args[0]):
        named = command.args[0]
        talk.audit("refuse", f"/evaluate {named[:40]}: not the head {talk.pr.short_sha}")
        talk.reply(commands.not_head_reply(command, talk.user, named, talk.pr.short_sha))
        talk.react(FAILED)
        return
    talk.react(ACCEPTED)
    talk.audit("approve-evaluate", remember="approval")
    record_head(talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha)
    talk.queue_run(f"Evaluated at the request of @{talk.user}.", requested_by=talk.user)


def _retrain(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """Retrain the head with the given parameters; comma lists make a matrix of candidates,
    each run on its own (bot/runs/experiment_runs.py)."""
    matrix: Matrix | None = None
    if _is_matrix(command.text):
        built = build_matrix(command.text, config.retrain.parameters, config.retrain.max_candidates)
        if isinstance(built, list):
            talk.reply(commands.problems_reply(command, built))
            talk.react(FAILED)
            return
        matrix = built
        request = commands.RetrainRequest(matrix.candidates[0].parameters)
    else:
        parsed = commands.parse_retrain(command.args, config.retrain.parameters)
        if isinstance(parsed, list):
            talk.reply(commands.problems_reply(command, parsed))
            talk.react(FAILED)
            return
        request = parsed
    if config.retrain.run is None and config.retrain.runner != "semaphore":
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n`/retrain` needs `retrain.run` in "
            "`.github/mlgate.yml`; nothing was run."
        )
        talk.react(FAILED)
        return
    approved = talk.records.decision("approval", talk.pr.head_sha)
    if approved is None and not author_trusted(talk.gh, talk.pr):
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n@{talk.user}, this PR's code has not been "
            f"approved to run: comment `/evaluate` to approve {talk.pr.short_sha}, then retrain."
        )
        talk.react(FAILED)
        return
    if matrix is not None and len(matrix.candidates) > 1:
        _start_matrix(talk, command, config, matrix)
        return
    talk.react(ACCEPTED)
    given = " ".join(f"{k}={v}" for k, v in request.parameters.items())
    talk.audit("retrain", given)
    record_head(talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha)
    talk.queue_run("", retrain=dict(request.parameters), requested_by=talk.user)


def _is_matrix(text: str) -> bool:
    """Whether `/retrain text` has a comma list (an unquoted, unescaped comma)."""
    words = split_words(text)
    return not isinstance(words, str) and any(len(word.items) > 1 for word in words)


def _start_matrix(
    talk: Conversation, command: commands.Command, config: RepoConfig, matrix: Matrix
) -> None:
    if config.retrain.runner != "local":
        talk.reply(
            f"{commands.quote_line(command.line)}\n\nThe experiment matrix runs with "
            "`retrain.runner: local` only; retrain one combination at a time on Semaphore."
        )
        talk.react(FAILED)
        return
    talk.react(ACCEPTED)
    count = len(matrix.candidates)
    talk.audit("retrain-matrix", f"{count} candidates: {command.text[:200]}")
    record_head(talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha)
    assert talk.event.installation_id is not None
    started = experiment_runs.start(
        talk.ctx.redis, talk.pr, talk.event.installation_id, matrix, talk.user, talk.comment_id
    )
    talk.add(started)
    talk.reply(
        f"@{talk.user}, {count} candidates (c1…c{count}) are queued on {talk.pr.short_sha}, "
        "one at a time so that other pull requests take turns. The leaderboard in the report "
        "updates as each finishes; `mlgate/quality` stays this head's own evaluation. "
        "`/promote cN` commits a candidate's outputs to this branch."
    )


def _promote(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """Commit a finished candidate's outputs to the PR branch; the push that makes is
    evaluated as any other (GitHub's synchronize)."""
    name = command.args[0]
    promoted = promotion.promote(talk.gh, talk.ctx.redis, talk.pr, talk.pull, name)
    if promoted.commit is None:
        talk.audit("promote-refused", promoted.detail)
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n@{talk.user}, {name} was not promoted: "
            f"{promoted.answer}"
        )
        talk.react(FAILED)
        return
    talk.react(ACCEPTED)
    talk.audit("promote", promoted.detail)
    talk.reply(f"@{talk.user} {promoted.answer}")
    talk.react(DONE)


def _override(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    talk.react(ACCEPTED)
    talk.audit("override", command.text, remember="override")
    shown = talk.evaluator().republish(talk.pr, talk.records)
    if shown is None:
        # Nothing evaluated yet at this sha: the check says so now; the evaluation, when it
        # comes, shows the override too.
        sha = talk.pr.head_sha
        checks = [
            CheckOutput(
                QUALITY_CHECK,
                sha,
                f"Overridden by @{talk.user}",
                f"@{talk.user} accepted this commit's quality gate: {command.text}",
                "success",
            )
        ]
        if config.deploy.enabled:  # the gate is open now: the deploy button may appear
            checks.append(deploy.check_of(talk.records, sha, config.deploy))
        shown = Publication(talk.pr.repo, talk.pr.number, checks=tuple(checks))
    talk.add(shown)
    talk.react(DONE)


def _deploy(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """`/deploy` or the Approve deploy button; the comment then shows the decision."""
    _decide_deploy(talk, command, config)
    shown = talk.evaluator().republish(talk.pr, talk.records)
    if shown is not None:
        talk.add(shown)


def _decide_deploy(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """Approve deploying the head, checked against `deploy.approvers`; a valid approval
    deploys at once (`on: approval`) or on merge, and a new head needs a new one."""
    settings = config.deploy
    if not settings.enabled:
        talk.reply(
            f"{commands.quote_line(command.line)}\n\nThis repository configures no deployment "
            "(`deploy:` in `.github/mlgate.yml`); nothing was deployed."
        )
        talk.react(FAILED)
        return
    repo, number = talk.pr.repo, talk.pr.number
    sha = talk.clicked_sha or talk.pr.head_sha

    def member(team: str) -> bool:
        return deploy.in_team(talk.gh, repo, team, talk.user)

    # Every /deploy and every press is checked, also once the head is approved: a second
    # approver must be one too.
    why = deploying.refusal(
        talk.pull,
        sha,
        settings,
        talk.user,
        gate_passed=talk.records.gate_passed(sha),
        permission=talk.permission,
        in_team=member,
        contributors=talk.contributors,
    )
    if why is not None:
        talk.audit("deploy-refused", why, sha=sha, remember=REFUSED_DEPLOY)
        refused = deploy.check_of(talk.records, sha, settings)
        talk.add(Publication(repo, number, checks=(refused,)))
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n@{talk.user}, deploying "
            f"{sha[:7]} was not approved: {why}."
        )
        talk.react(FAILED)
        return
    approval = talk.records.decision(deploying.APPROVAL, sha)
    fresh = approval is None
    if approval is None:
        talk.react(ACCEPTED)
        approval = talk.audit("approve-deploy", sha=sha, remember=deploying.APPROVAL)
    outcome = "on-merge"
    if settings.on == deploying.ON_APPROVAL:
        # Also on a second click: a deploy that failed half-way is retried, never doubled.
        request = deploying.DeployRequest(
            repo,
            number,
            sha,
            sha,
            deploying.ON_APPROVAL,
            approval.user,
            talk.event.installation_id,
            clone_url=talk.pr.clone_url,
        )
        started = deploy.start(talk.ctx.settings, talk.ctx.redis, talk.gh, request, settings)
        talk.add(started)
        outcome = started.outcome
    talk.add(Publication(repo, number, checks=(deploy.check_of(talk.records, sha, settings),)))
    if fresh:
        then = deploying.what_follows(outcome, settings)
        talk.reply(f"@{talk.user} approved deploying {sha[:7]}: {then}.")
        talk.react(DONE)


HANDLERS = {
    "evaluate": _evaluate,
    "retrain": _retrain,
    "promote": _promote,
    "override": _override,
    "deploy": _deploy,
}
