"""The GitHub API calls of one event, from the emulator's request log: patterns, counts, details.

Pure functions: they turn `RecordedRequest`s into rows a reader can compare between events.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emulator import RecordedRequest
from bot.github.github_client import MUTATING_METHODS

TOKEN_PATTERN = "POST /app/installations/{id}/access_tokens"

# Most specific first; each turns a concrete path into the route GitHub documents.
_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rx), pattern)
    for rx, pattern in (
        (r"^/app/installations/\d+/access_tokens$", "/app/installations/{id}/access_tokens"),
        (r"^/repos/[^/]+/[^/]+/installation$", "/repos/{o}/{r}/installation"),
        (r"^/repos/[^/]+/[^/]+/contents(/.*)?$", "/repos/{o}/{r}/contents/{path}"),
        (r"^/repos/[^/]+/[^/]+/check-runs$", "/repos/{o}/{r}/check-runs"),
        (r"^/repos/[^/]+/[^/]+/check-runs/\d+$", "/repos/{o}/{r}/check-runs/{id}"),
        (r"^/repos/[^/]+/[^/]+/commits/.+/check-runs$", "/repos/{o}/{r}/commits/{ref}/check-runs"),
        (r"^/repos/[^/]+/[^/]+/issues/\d+/comments$", "/repos/{o}/{r}/issues/{number}/comments"),
        (r"^/repos/[^/]+/[^/]+/issues/comments/\d+$", "/repos/{o}/{r}/issues/comments/{id}"),
        (
            r"^/repos/[^/]+/[^/]+/issues/comments/\d+/reactions$",
            "/repos/{o}/{r}/issues/comments/{id}/reactions",
        ),
        (r"^/repos/[^/]+/[^/]+/pulls/\d+$", "/repos/{o}/{r}/pulls/{number}"),
        (r"^/repos/[^/]+/[^/]+/pulls/\d+/files$", "/repos/{o}/{r}/pulls/{number}/files"),
        (
            r"^/repos/[^/]+/[^/]+/collaborators/[^/]+/permission$",
            "/repos/{o}/{r}/collaborators/{user}/permission",
        ),
        (r"^/repos/[^/]+/[^/]+/compare/.+$", "/repos/{o}/{r}/compare/{basehead}"),
        (r"^/repos/[^/]+/[^/]+/statuses/[0-9a-f]+$", "/repos/{o}/{r}/statuses/{sha}"),
    )
)


def route(path: str) -> str:
    """`/repos/acme/x/check-runs/12` -> `/repos/{o}/{r}/check-runs/{id}`."""
    for rx, pattern in _ROUTES:
        if rx.match(path):
            return pattern
    generic = re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{o}/{r}", path)
    generic = re.sub(r"/[0-9a-f]{40}(?=/|$)", "/{sha}", generic)
    return re.sub(r"/\d+(?=/|$)", "/{id}", generic)


def pattern(request: RecordedRequest) -> str:
    return f"{request.method} {route(request.path)}"


def detail(request: RecordedRequest, refs: Mapping[str, str]) -> str:
    """What distinguishes calls of one pattern: the file and revision read, the check's state.

    `refs` names known shas ("base", "head", "previous head") so that reads can be compared.
    """
    method, path = request.method, request.path
    body: Any = request.body if isinstance(request.body, dict) else {}
    contents = re.match(r"^/repos/[^/]+/[^/]+/contents/(.*)$", path)
    if contents:
        ref = request.query.get("ref", "(default branch)")
        return f"{contents.group(1)} @ {refs.get(ref, ref[:12])}"
    if "/check-runs" in path and method in ("POST", "PATCH"):
        output = body.get("output") if isinstance(body.get("output"), dict) else {}
        parts = [
            str(body.get("name", "")),
            str(body.get("status", "")),
            str(body.get("conclusion", "") or ""),
            str(output.get("title", "")),
        ]
        sha = body.get("head_sha")
        if isinstance(sha, str):
            parts.append(f"on {refs.get(sha, sha[:12])}")
        return " ".join(p for p in parts if p)
    if "per_page" in request.query or "page" in request.query:
        return "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
    return ""


@dataclass(frozen=True)
class EventCalls:
    """The API calls one event caused, in the order the emulator answered them."""

    event: str
    token_requests: int
    calls: tuple[tuple[str, str, int], ...]  # (pattern, detail, HTTP status), token excluded

    @property
    def count(self) -> int:
        return len(self.calls)

    @property
    def mutating(self) -> int:
        """Calls that mlgate paces to one per second after a burst of 10 (bot/pacing.py)."""
        return sum(1 for p, _, _ in self.calls if p.split(" ", 1)[0] in MUTATING_METHODS)

    def by_pattern(self) -> Counter[str]:
        return Counter(p for p, _, _ in self.calls)

    def errors(self) -> list[tuple[str, str, int]]:
        return [c for c in self.calls if c[2] >= 400]


def event_calls(
    event: str, requests: Sequence[RecordedRequest], refs: Mapping[str, str]
) -> EventCalls:
    tokens = sum(1 for r in requests if pattern(r) == TOKEN_PATTERN)
    calls = tuple(
        (pattern(r), detail(r, refs), r.status) for r in requests if pattern(r) != TOKEN_PATTERN
    )
    return EventCalls(event, tokens, calls)


def repeated_reads(calls: EventCalls) -> list[tuple[str, int]]:
    """GETs with the same pattern and detail sent more than once in one event."""
    seen = Counter((p, d) for p, d, _ in calls.calls if p.startswith("GET "))
    return [(f"{p} [{d}]" if d else p, n) for (p, d), n in seen.items() if n > 1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (as bench/webhook_ack reports); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    """min, p50, p95, max and mean, rounded to 0.1 (milliseconds in, milliseconds out)."""
    if not values:
        return {}
    return {
        "n": len(values),
        "min": round(min(values), 1),
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "max": round(max(values), 1),
        "mean": round(sum(values) / len(values), 1),
    }
