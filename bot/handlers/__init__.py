"""Every behaviour module's handlers, combined in one router: file names list the features."""

from __future__ import annotations

from bot.core.routing import Router
from bot.handlers import (
    check_buttons,
    comment_commands,
    installation,
    pull_request,
    push,
    semaphore_notifications,
)

router = Router.combine(
    installation.router,
    pull_request.router,
    push.router,
    check_buttons.router,
    comment_commands.router,
    semaphore_notifications.router,
)
