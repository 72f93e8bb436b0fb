"""Every behaviour module's handlers, combined in one router: file names list the features."""

from __future__ import annotations

from bot.handlers import installation
from bot.routing import Router

router = Router.combine(installation.router)
