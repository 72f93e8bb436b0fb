"""The Flask app factory: `gunicorn 'bot:create_app()'`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, Response
from werkzeug.exceptions import RequestEntityTooLarge

from bot import logs
from bot.settings import Settings
from bot.state.redis_conn import connect
from bot.web import dashboard, health, metrics_upload, prometheus_metrics, webhook_views
from bot.web.answers import answer
from bot.web.services import Services


def create_app(config: Settings | Mapping[str, str] | None = None) -> Flask:
    """Build the web app from `config` (Settings, or env-style names), else from the environment.

    Nothing connects here: the Redis client connects on first use, so the app starts even
    while Redis is down and /readyz says so.
    """
    settings = config if isinstance(config, Settings) else Settings.from_env(config)
    logs.configure()
    app = Flask("bot", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = webhook_views.BODY_LIMIT
    app.extensions["mlgate"] = Services(settings=settings, redis=connect(settings.redis_url))
    app.register_blueprint(webhook_views.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics_upload.bp)
    app.register_blueprint(prometheus_metrics.bp)
    dashboard.configure(app, settings)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> Response:
        return answer(413, f"payload too large: over {webhook_views.BODY_LIMIT} bytes")

    return app
