"""gunicorn settings outside `mlgate serve`: `gunicorn -c deploy/gunicorn.conf.py ...`.

The settings live in the package (bot/gunicorn_conf.py), so an installed mlgate has them too.
"""

from bot.gunicorn_conf import *  # noqa: F403
