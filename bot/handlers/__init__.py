"""Every behaviour module's handlers, combined in one router: file names list the features."""

from __future__ import annotations

from bot.handlers import checks, commands, installation, pull_request, push, semaphore
from bot.routing import Router

router = Router.combine(
    installation.router,
    pull_request.router,
    push.router,
    checks.router,
    commands.router,
    semaphore.router,
)
