"""One-line plain-text HTTP answers of the web app, each logged under a stable outcome key."""

from __future__ import annotations

import logging

from flask import Response

from bot import telemetry

log = logging.getLogger(__name__)

# Client and availability failures are worth a warning; accepted and duplicate are routine.
_WARN = frozenset((400, 401, 404, 413, 503))


def answer(status: int, message: str, *, subject: str = "webhook", **extra: object) -> Response:
    """`message` as a one-line answer; its words before the first `:` are the outcome key.

    `subject` names the endpoint family in the log line ("webhook", "metrics upload").
    """
    outcome = message.split(":")[0].replace(" ", "_")
    if subject == "webhook":
        telemetry.metrics().webhooks.labels(str(extra.get("source", "github")), outcome).inc()
    log.log(
        logging.WARNING if status in _WARN else logging.INFO,
        "%s %s",
        subject,
        outcome,
        extra={"status": status, "outcome": outcome, **extra},
    )
    return Response(message + "\n", status=status, mimetype="text/plain")
