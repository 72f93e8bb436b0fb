"""Running PR commands (a comment's, or a check button's): permission asked of GitHub, replies,
reactions, runs and audit."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from bot.core import commands
from bot.core.config import RepoConfig, load_config
from bot.core.permissions import at_least, level
from bot.core.routing import Event
from bot.errors import RepoConfigError
from bot.github.github_client import GitHubClient
from bot.github.repo_files import RepoFiles
from bot.runs import deploy
from bot.runs.check_runs import QUALITY_CHECK, Checks
from bot.runs.context import Context
from bot.runs.evaluation import Evaluator, PullRequest, author_trusted
from bot.runs.evaluation_queue import EVALUATE, queue_evaluation
from bot.state import audit, permission_cache
from bot.state.pr_heads import record_head

log = logging.getLogger(__name__)

# GitHub's reaction names for 👀, 🚀 and 😕 (DESIGN.md, Reactions).
ACCEPTED, DONE, FAILED = "eyes", "rocket", "confused"


@dataclass
class Conversation:
    """One comment's commands: where to reply and react, and the PR they act on."""

    ctx: Context
    gh: GitHubClient
    event: Event
    pr: PullRequest
    user: str
    comment_id: int | None  # None for a check-run button: nothing to react on
    clicked_sha: str | None = None  # the head an "Approve deploy" button was shown on

    def reply(self, body: str) -> None:
        self.gh.create_comment(self.pr.repo, self.pr.number, body)

    def react(self, content: str) -> None:
        if self.comment_id is not None:
            self.gh.add_reaction(self.pr.repo, self.comment_id, content)

    def permission(self) -> str:
        """The commenter's level, asked of GitHub (never author_association), cached briefly."""
        cached = permission_cache.cached_level(self.ctx.redis, self.pr.repo, self.user)
        if cached is not None:
            return cached
        found = level(self.gh.collaborator_permission(self.pr.repo, self.user))
        permission_cache.remember_level(self.ctx.redis, self.pr.repo, self.user, found)
        return found

    def audit(self, kind: str, detail: str = "") -> audit.Entry:
        entry = audit.Entry(kind, self.user, self.pr.number, self.pr.head_sha, detail)
        return audit.record(self.ctx.redis, self.pr.repo, entry)

    def refuse(self, command: commands.Command, required: str, has: str | None) -> None:
        self.audit("refuse", f"/{command.name}: needs {required}, has {has or 'unknown'}")
        self.reply(commands.refusal(command, self.user, required, has))
        self.react(FAILED)

    def queue_run(self, note: str, **job: object) -> None:
        """A run for this command only: two commands in a row queue one behind the other."""
        origin = f"comment{self.comment_id}" if self.comment_id else f"button{uuid.uuid4().hex}"
        queue_evaluation(
            self.ctx,
            self.event,
            self.pr,
            note,
            kind=f"{EVALUATE}-{origin}",
            forced=True,
            comment_id=self.comment_id,
            **job,
        )


def run_comment(
    event: Event,
    ctx: Context,
    number: int,
    user: str,
    comment_id: int,
    parsed: list[commands.Command],
) -> None:
    """Run a comment's commands, in order, as `user` on PR `number`."""
    talk, config = _conversation(event, ctx, number, user, comment_id)
    for command in parsed:
        _run(talk, command, config)


def press_button(event: Event, ctx: Context, number: int, head_sha: str, identifier: str) -> None:
    """A check-run button is its command without arguments: the same checks, the same run."""
    talk, config = _conversation(event, ctx, number, event.payload["sender"]["login"], None)
    if identifier == deploy.APPROVE:
        # Approving an old head is refused and said so (DESIGN.md, Deploy states).
        talk.clicked_sha = head_sha
        _run(talk, commands.Command("deploy", line="Approve deploy (button)"), config)
        return
    if talk.pr.head_sha != head_sha:
        log.info("button on an old head ignored", extra=event.log_extra())
        return
    label = {"evaluate": "Re-evaluate", "retrain": "Retrain"}[identifier]
    _run(talk, commands.Command(identifier, line=f"{label} (button)"), config)


def _conversation(
    event: Event, ctx: Context, number: int, user: str, comment_id: int | None
) -> tuple[Conversation, RepoConfig | None]:
    gh = ctx.client(event)
    repo = event.repo
    assert repo is not None
    pr = PullRequest.from_api(gh.get_pull(repo, number), event.payload["repository"])
    talk = Conversation(ctx, gh, event, pr, user, comment_id)
    try:
        config: RepoConfig | None = load_config(
            RepoFiles(gh, ctx.redis, repo).read,
            pr.base_sha if pr.base_ref == pr.default_branch else pr.default_branch,
        )
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
    """Re-evaluate the head; for an untrusted PR it also approves running this very sha."""
    talk.react(ACCEPTED)
    entry = talk.audit("approve-evaluate")
    audit.set_decision(talk.ctx.redis, "approval", talk.pr.repo, entry)
    record_head(talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha)
    talk.queue_run(f"Evaluated at the request of @{talk.user}.", requested_by=talk.user)


def _retrain(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    request = commands.parse_retrain(command.args, config.retrain.parameters)
    if isinstance(request, list):
        talk.reply(commands.problems_reply(command, request))
        talk.react(FAILED)
        return
    if config.retrain.run is None and config.retrain.runner != "semaphore":
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n`/retrain` needs `retrain.run` in "
            "`.github/mlgate.yml`; nothing was run."
        )
        talk.react(FAILED)
        return
    approved = audit.decision(
        talk.ctx.redis, "approval", talk.pr.repo, talk.pr.number, talk.pr.head_sha
    )
    if approved is None and not author_trusted(talk.gh, talk.pr):
        talk.reply(
            f"{commands.quote_line(command.line)}\n\n@{talk.user}, this PR's code has not been "
            f"approved to run: comment `/evaluate` to approve {talk.pr.short_sha}, then retrain."
        )
        talk.react(FAILED)
        return
    talk.react(ACCEPTED)
    given = " ".join(f"{k}={v}" for k, v in request.parameters.items())
    talk.audit("retrain", given)
    record_head(talk.ctx.redis, talk.pr.repo, talk.pr.number, talk.pr.head_sha)
    talk.queue_run("", retrain=dict(request.parameters), requested_by=talk.user)


def _override(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    talk.react(ACCEPTED)
    entry = talk.audit("override", command.text)
    audit.set_decision(talk.ctx.redis, "override", talk.pr.repo, entry)
    evaluator = Evaluator(talk.ctx.settings, talk.ctx.redis, talk.gh, token=lambda: "")
    if evaluator.republish(talk.pr) is None:
        # Nothing evaluated yet at this sha: the check says so now; the evaluation, when it
        # comes, shows the override too.
        Checks(talk.gh, talk.ctx.redis, talk.pr.repo).complete(
            QUALITY_CHECK,
            talk.pr.head_sha,
            "success",
            f"Overridden by @{talk.user}",
            f"@{talk.user} accepted this commit's quality gate: {command.text}",
        )
        if config.deploy.enabled:  # the gate is open now: the deploy button may appear
            deploy.publish_check(
                talk.gh,
                talk.ctx.redis,
                talk.pr.repo,
                talk.pr.number,
                talk.pr.head_sha,
                config.deploy,
            )
    talk.react(DONE)


def _deploy(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """`/deploy` or the Approve deploy button; the comment then shows the decision."""
    _decide_deploy(talk, command, config)
    Evaluator(talk.ctx.settings, talk.ctx.redis, talk.gh, token=lambda: "").republish(talk.pr)


def _decide_deploy(talk: Conversation, command: commands.Command, config: RepoConfig) -> None:
    """Approve deploying the head (DESIGN.md, Deploy states): checked against
    `deploy.approvers`; a valid approval deploys at once (`on: approval`) or on merge."""
    settings = config.deploy
    if not settings.enabled:
        talk.reply(
            f"{commands.quote_line(command.line)}\n\nThis repository configures no deployment "
            "(`deploy:` in `.github/mlgate.yml`); nothing was deployed."
        )
        talk.react(FAILED)
        return
    conn, repo, number = talk.ctx.redis, talk.pr.repo, talk.pr.number
    sha = talk.clicked_sha or talk.pr.head_sha
    approval = audit.decision(conn, deploy.APPROVAL, repo, number, sha)
    fresh = approval is None
    if approval is None:
        # The PR as GitHub has it now: an approval is of one open head, nothing older.
        pull = talk.gh.get_pull(repo, number)
        why = deploy.refusal(talk.gh, conn, pull, repo, sha, settings, talk.user, talk.permission)
        if why is not None:
            deploy.refuse(conn, repo, number, sha, talk.user, why)
            deploy.publish_check(talk.gh, conn, repo, number, sha, settings)
            talk.reply(
                f"{commands.quote_line(command.line)}\n\n@{talk.user}, deploying "
                f"{sha[:7]} was not approved: {why}."
            )
            talk.react(FAILED)
            return
        talk.react(ACCEPTED)
        approval = deploy.approve(conn, repo, number, sha, talk.user)
    outcome = "on-merge"
    if settings.on == deploy.ON_APPROVAL:
        # Also on a second click: a deploy that failed half-way is retried, never doubled.
        request = deploy.DeployRequest(
            repo,
            number,
            sha,
            sha,
            deploy.ON_APPROVAL,
            approval.user,
            talk.event.installation_id,
            clone_url=talk.pr.clone_url,
        )
        outcome = deploy.start(talk.ctx.settings, conn, talk.gh, request, settings)
    deploy.publish_check(talk.gh, conn, repo, number, sha, settings)
    if fresh:
        then = {
            "on-merge": "it deploys when this pull request is merged",
            "pending": "it deploys when the Semaphore pipeline of this commit is done",
            "promoted": f"Semaphore promotion `{settings.promotion}` started",
            "queued": "the deploy command runs on a worker",
        }.get(outcome, f"deploy: {outcome}")
        talk.reply(f"@{talk.user} approved deploying {sha[:7]}: {then}.")
        talk.react(DONE)


HANDLERS = {
    "evaluate": _evaluate,
    "retrain": _retrain,
    "override": _override,
    "deploy": _deploy,
}
