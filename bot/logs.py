"""Structured logging with secret redaction: every handler mlgate installs scrubs secrets."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

REDACTED = "***"
# Shapes of GitHub tokens (ghs_ installation, ghp_ personal, gho_ OAuth, ...) and JWTs,
# redacted even when nobody registered them as secrets.
_TOKEN_SHAPES = re.compile(r"\bgh[pousr]_[A-Za-z0-9_]{16,}\b|\beyJ[\w-]+\.[\w-]+\.[\w-]+")
# Shorter values would redact ordinary words.
_MIN_SECRET_LENGTH = 6
# A long-running worker registers a new installation token every hour; remember the newest
# ones only (token-shaped strings are redacted by shape anyway).
_MAX_SECRETS = 512
_secrets: dict[str, None] = {}


def register_secret(value: str | None) -> None:
    """Remember a secret value so that redact() removes it from every log line."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.pop(value, None)
        _secrets[value] = None
        while len(_secrets) > _MAX_SECRETS:
            del _secrets[next(iter(_secrets))]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return text with registered and given secrets and token-shaped strings masked."""
    for secret in sorted({*_secrets, *secrets}, key=len, reverse=True):
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    return _TOKEN_SHAPES.sub(REDACTED, text)


_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


@contextmanager
def to_file(path: Path) -> Iterator[None]:
    """While the block runs, every log line goes (as JSON) to `path` instead of the terminal:
    `mlgate demo` and the benchmarks show their story, not the web's log."""
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        handler.close()


def configure(level: str = "INFO") -> None:
    """Send JSON lines to stderr; idempotent so that every entry point may call it."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
