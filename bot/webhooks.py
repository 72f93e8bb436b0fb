"""The webhook views: verify, de-duplicate, enqueue, answer; never a GitHub call on this path."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import redis
from flask import Blueprint, Response, request

from bot import queueing, signatures
from bot.services import services

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# GitHub's delivery ids are GUIDs; they become job ids, so nothing else gets through.
DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# DESIGN.md: 413 over 25 MB. GitHub caps payloads at 25 MB and drops larger ones.
BODY_LIMIT = 25 * 1024 * 1024


def answer(status: int, message: str, **extra: object) -> Response:
    """A one-line plain-text answer, logged under a stable outcome key."""
    outcome = message.split(":")[0].replace(" ", "_")
    log.log(
        logging.WARNING if status in (400, 401, 413, 503) else logging.INFO,
        "webhook %s",
        outcome,
        extra={"status": status, "outcome": outcome, **extra},
    )
    return Response(message + "\n", status=status, mimetype="text/plain")


def _payload(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes] | None:
    """The JSON payload and its bytes; GitHub's form encoding puts the JSON in `payload`."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = request.form.get("payload", "").encode()
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return (parsed, body) if isinstance(parsed, dict) else None


@bp.post("/webhooks/github")
def github() -> Response:
    started = time.perf_counter()
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        return answer(413, f"payload too large: over {BODY_LIMIT} bytes")
    body = request.get_data(cache=True)
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        return answer(401, "missing signature: no X-Hub-Signature-256 header")
    if not signatures.verify(services().settings.webhook_secrets, body, signature):
        return answer(401, "bad signature: X-Hub-Signature-256 does not match the body")
    event = request.headers.get("X-GitHub-Event")
    delivery_id = request.headers.get("X-GitHub-Delivery")
    if not event or not delivery_id:
        missing = "X-GitHub-Event" if not event else "X-GitHub-Delivery"
        return answer(400, f"missing header: {missing}")
    if not DELIVERY_ID.fullmatch(delivery_id):
        return answer(400, "malformed header: X-GitHub-Delivery must be a GUID")
    extra = {"delivery_id": delivery_id, "event": event}
    parsed = _payload(body, request.content_type or "")
    if parsed is None:
        return answer(400, "malformed payload: the body is not a JSON object", **extra)
    payload, json_body = parsed
    if event == "ping":
        return answer(200, f"pong: zen {payload.get('zen', '')!r}", **extra)
    try:
        accepted = queueing.accept_github_delivery(
            services().redis,
            event,
            delivery_id,
            json_body,
            services().settings.retry_delays,
        )
    except redis.RedisError as exc:
        return answer(503, f"redis unavailable: {type(exc).__name__}; redeliver later", **extra)
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    if not accepted:
        return answer(200, f"duplicate: delivery {delivery_id} was seen before", **extra)
    return answer(202, f"accepted: delivery {delivery_id}", duration_ms=duration_ms, **extra)
