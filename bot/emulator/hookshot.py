"""Webhook deliveries as GitHub's "Hookshot" makes them: signed body, headers, delivery log."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

USER_AGENT = "GitHub-Hookshot/emulator"
# GitHub gives up on a delivery after 10 seconds ("Handling failed webhook deliveries").
DELIVERY_TIMEOUT = 10.0
HOOK_ID = 424242


def signature_256(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256`: "sha256=" and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_1(secret: str, body: bytes) -> str:
    """The legacy `X-Hub-Signature` (HMAC-SHA1) GitHub still sends alongside."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def delivery_headers(
    *, event: str, guid: str, app_id: str, secret: str, body: bytes
) -> dict[str, str]:
    """The headers of one delivery of an App webhook."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "X-GitHub-Hook-ID": str(HOOK_ID),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": str(app_id),
        "X-Hub-Signature": signature_1(secret, body),
        "X-Hub-Signature-256": signature_256(secret, body),
    }


def delivery_status(status_code: int, error: str | None) -> str:
    """The `status` text GitHub's delivery log shows for an answer (or a failed connection)."""
    if error is not None:
        return error
    if 200 <= status_code < 300:
        return "OK"
    return f"Invalid HTTP Response: {status_code}"


@dataclass
class Delivery:
    """One attempt at delivering a webhook, with what is needed to send it again."""

    id: int
    guid: str
    delivered_at: str
    redelivery: bool
    duration: float
    status_code: int
    status: str
    event: str
    payload: dict[str, Any]
    body: bytes

    def as_json(self) -> dict[str, Any]:
        """The delivery as `GET /app/hook/deliveries` lists it."""
        installation = self.payload.get("installation")
        repository = self.payload.get("repository")
        action = self.payload.get("action")
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": self.delivered_at,
            "redelivery": self.redelivery,
            "duration": self.duration,
            "status": self.status,
            "status_code": self.status_code,
            "event": self.event,
            "action": action if isinstance(action, str) else None,
            "installation_id": installation.get("id") if isinstance(installation, dict) else None,
            "repository_id": repository.get("id") if isinstance(repository, dict) else None,
            "throttled_at": None,
        }
