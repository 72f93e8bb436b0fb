"""PR comment commands: /evaluate, /retrain, /override, /deploy, /help, from people only."""

from __future__ import annotations

import logging
import uuid

from bot.core import commands
from bot.core.pr_facts import github_time
from bot.core.routing import Event, Router
from bot.runs import pr_commands
from bot.runs.context import Context
from bot.state import comment_claims

log = logging.getLogger(__name__)
router = Router()


# Only `created`: an edited comment never runs commands, or an edit could re-approve a head
# that was pushed after the comment was first written.
@router.register("issue_comment", action="created")
def comment_created(event: Event, ctx: Context) -> None:
    payload = event.payload
    if "pull_request" not in payload["issue"]:
        return  # a plain issue: mlgate's commands act on pull requests
    comment = payload["comment"]
    if payload["sender"].get("type") == "Bot" or comment["user"].get("type") == "Bot":
        return  # bots, mlgate included, never command mlgate
    parsed = commands.parse_comment(comment["body"] or "")
    if not parsed.commands:
        return
    repo = event.repo
    assert repo is not None
    comment_id = int(comment["id"])
    # The same comment under another delivery id (a replayed body, a second delivery) must
    # not approve, deploy or run a second time; a retry of this delivery's job may.
    delivery = event.delivery_id or uuid.uuid4().hex
    if not comment_claims.claim(ctx.redis, repo, comment_id, delivery):
        log.info("comment already handled under another delivery", extra=event.log_extra())
        return
    number, user = int(payload["issue"]["number"]), comment["user"]["login"]
    written_at = github_time(comment.get("created_at"))
    pr_commands.run_comment(event, ctx, number, user, comment_id, parsed, written_at)
