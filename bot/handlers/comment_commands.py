"""PR comment commands: /evaluate, /retrain, /override, /deploy, /help, from people only."""

from __future__ import annotations

from bot.core import commands
from bot.core.routing import Event, Router
from bot.runs import pr_commands
from bot.runs.context import Context

router = Router()


@router.register("issue_comment", action="created")
def comment_created(event: Event, ctx: Context) -> None:
    payload = event.payload
    if "pull_request" not in payload["issue"]:
        return  # a plain issue: mlgate's commands act on pull requests
    comment = payload["comment"]
    if payload["sender"].get("type") == "Bot" or comment["user"].get("type") == "Bot":
        return  # bots, mlgate included, never command mlgate
    parsed = commands.parse(comment["body"] or "")
    if not parsed:
        return
    number, user = int(payload["issue"]["number"]), comment["user"]["login"]
    pr_commands.run_comment(event, ctx, number, user, int(comment["id"]), parsed)
