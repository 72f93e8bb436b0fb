"""Real GitHub payloads, signed once, as raw HTTP/1.1 requests that differ only in delivery id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bot.core import signatures

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "github"
PATH = "/webhooks/github"
# The events an ML repository's installation sends most: pushes, PR updates, commands in
# comments, and the check runs mlgate itself creates. Requests cycle through them in order.
MIX = (
    ("pull_request", "synchronize.payload.json"),
    ("push", "payload.json"),
    ("issue_comment", "created.payload.json"),
    ("check_run", "completed.payload.json"),
)


@dataclass(frozen=True)
class Template:
    """One signed request, split around its X-GitHub-Delivery value."""

    event: str
    head: bytes
    tail: bytes

    def request(self, delivery_id: str) -> bytes:
        return b"".join((self.head, delivery_id.encode("ascii"), self.tail))

    @property
    def body_size(self) -> int:
        return len(self.tail) - len(b"\r\n\r\n")


def compact_body(path: Path) -> bytes:
    """The fixture as GitHub sends it: compact JSON, not the pretty-printed file."""
    return json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()


def template(event: str, body: bytes, secret: str, host: str) -> Template:
    """The request GitHub would send, signed with `secret`.

    The signature covers only the body, so a fresh delivery id per request needs no re-signing.
    """
    headers = (
        f"POST {PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: GitHub-Hookshot/bench\r\n"
        "Accept: */*\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-GitHub-Event: {event}\r\n"
        "X-GitHub-Hook-ID: 1\r\n"
        "X-GitHub-Hook-Installation-Target-ID: 1\r\n"
        "X-GitHub-Hook-Installation-Target-Type: integration\r\n"
        f"X-Hub-Signature-256: {signatures.sign(secret, body)}\r\n"
        "X-GitHub-Delivery: "
    )
    return Template(event=event, head=headers.encode("ascii"), tail=b"\r\n\r\n" + body)


def templates(secret: str, host: str) -> tuple[Template, ...]:
    return tuple(
        template(event, compact_body(FIXTURES / event / name), secret, host) for event, name in MIX
    )


def delivery_id(run: str, phase: int, connection: int, seq: int) -> str:
    """Unique and shaped like GitHub's (a UUID), so keys in Redis have their real size."""
    return f"{run}-{phase:04x}-{connection:04x}-0000-{seq:012x}"
