"""The webhook views: verify, de-duplicate, enqueue, answer; never a GitHub call on this path."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from flask import Blueprint, Response, g, request

from bot import telemetry
from bot.core import signatures
from bot.state import queues
from bot.web.answers import answer
from bot.web.services import services

bp = Blueprint("webhooks", __name__)


@bp.before_request
def _start_timer() -> None:
    g.mlgate_started = time.perf_counter()


@bp.after_request
def _observe(response: Response) -> Response:
    started = g.pop("mlgate_started", None)
    if started is not None:
        telemetry.metrics().webhook_seconds.observe(time.perf_counter() - started)
    return response


# GitHub's delivery ids are GUIDs and Semaphore's webhook ids UUIDs; they become job ids,
# so nothing else gets through.
DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# 413 over 25 MiB (docs/operating.md, Webhook answers): GitHub caps payloads at 25 MB and
# drops larger ones.
BODY_LIMIT = 25 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """What differs between webhook senders; everything else is one path (`receive`)."""

    name: str  # the delivery key namespace, job id prefix and `source` of the job's meta
    signature_header: str
    signature_prefixed: bool  # `sha256=` is required (GitHub) or optional (Semaphore)
    id_header: str  # stable across the sender's retries: the de-duplication key
    id_shape: str  # what a valid id looks like, for the answer to a malformed one
    job: str  # dotted path of the rq job that routes the stored body
    # The header naming the event; None when the sender has one kind only, named `name`.
    event_header: str | None = None
    ping_event: str | None = None  # answered 200 and never enqueued

    def job_args(self, event: str, delivery_id: str) -> tuple[str, ...]:
        # A job needs the event name only when the sender says it in a header.
        return (event, delivery_id) if self.event_header else (delivery_id,)


GITHUB = Source(
    name="github",
    signature_header="X-Hub-Signature-256",
    signature_prefixed=True,
    id_header="X-GitHub-Delivery",
    id_shape="a GUID",
    job=queues.HANDLE_GITHUB_EVENT,
    event_header="X-GitHub-Event",
    ping_event="ping",
)
# Semaphore (docs/semaphore.md): lowercase hex HMAC-SHA256 of the body (a
# `sha256=` prefix tolerated), and a webhook id that Semaphore keeps on its retries.
SEMAPHORE = Source(
    name="semaphore",
    signature_header="X-Semaphore-Signature-256",
    signature_prefixed=False,
    id_header="X-Semaphore-Webhook-Id",
    id_shape="a UUID",
    job=queues.HANDLE_SEMAPHORE_EVENT,
)


def _payload(body: bytes, content_type: str) -> bytes | None:
    """The JSON body (GitHub's form encoding puts it in `payload`), if it looks like an object.

    Only its shape is checked here, first and last non-blank bytes `{` and `}`: parsing a
    25 KB body on the request path cost more than everything else. A signed body that passes
    this and still does not parse fails in its job, recorded and not retried.
    """
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = request.form.get("payload", "").encode()
    stripped = body.strip()
    return body if stripped[:1] == b"{" and stripped[-1:] == b"}" else None


def _zen(body: bytes) -> str:
    try:
        return str(json.loads(body).get("zen", ""))
    except (ValueError, AttributeError):
        return ""


def receive(source: Source, secrets: Sequence[str]) -> Response:
    """The one webhook path: size, signature, headers, JSON, de-duplicate + store + enqueue."""
    started = time.perf_counter()
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        return answer(413, f"payload too large: over {BODY_LIMIT} bytes", source=source.name)
    # A chunked body has no Content-Length, and Werkzeug stops reading it at the limit without
    # saying whether more followed (it would fail as a bad signature); one byte more tells.
    request.max_content_length = BODY_LIMIT + 1
    body = request.get_data(cache=True)
    if len(body) > BODY_LIMIT:
        return answer(413, f"payload too large: over {BODY_LIMIT} bytes", source=source.name)
    signature = request.headers.get(source.signature_header)
    if not signature:
        return answer(
            401, f"missing signature: no {source.signature_header} header", source=source.name
        )
    if not signatures.well_formed(signature, prefixed=source.signature_prefixed):
        form = "sha256= and 64 hex digits" if source.signature_prefixed else "64 hex digits"
        return answer(
            401,
            f"malformed signature: {source.signature_header} must be {form}",
            source=source.name,
        )
    if not signatures.verify(secrets, body, signature, prefixed=source.signature_prefixed):
        return answer(
            401,
            f"bad signature: {source.signature_header} does not match the body",
            source=source.name,
        )
    required = [h for h in (source.event_header, source.id_header) if h is not None]
    for header in required:
        if not request.headers.get(header):
            return answer(400, f"missing header: {header}", source=source.name)
    event = request.headers[source.event_header] if source.event_header else source.name
    delivery_id = request.headers[source.id_header]
    if not DELIVERY_ID.fullmatch(delivery_id):
        return answer(
            400,
            f"malformed header: {source.id_header} must be {source.id_shape}",
            source=source.name,
        )
    extra = {"delivery_id": delivery_id, "event": event, "source": source.name}
    json_body = _payload(body, request.content_type or "")
    if json_body is None:
        return answer(400, "malformed payload: the body is not a JSON object", **extra)
    if event == source.ping_event:
        return answer(200, f"pong: zen {_zen(json_body)!r}", **extra)
    try:
        accepted = queues.accept_delivery(
            services().redis,
            source.name,
            delivery_id,
            json_body,
            services().settings.retry_delays,
            job=source.job,
            args=source.job_args(event, delivery_id),
        )
    except redis.RedisError as exc:
        return answer(503, f"redis unavailable: {type(exc).__name__}; redeliver later", **extra)
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    if not accepted:
        return answer(200, f"duplicate: delivery {delivery_id} was seen before", **extra)
    return answer(202, f"accepted: delivery {delivery_id}", duration_ms=duration_ms, **extra)


@bp.post("/webhooks/github")
def github() -> Response:
    return receive(GITHUB, services().settings.webhook_secrets)


@bp.post("/webhooks/semaphore")
def semaphore() -> Response:
    secret = services().settings.semaphore_webhook_secret
    if not secret:
        # 404, not 401 or 503: nothing is wrong with the request, and a retry cannot succeed
        # until an operator configures the secret; the route is simply not in use here.
        return answer(
            404,
            "not configured: set SEMAPHORE_WEBHOOK_SECRET to accept Semaphore webhooks",
            source=SEMAPHORE.name,
        )
    return receive(SEMAPHORE, (secret,))
