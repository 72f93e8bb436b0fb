"""The audit log: a Redis stream per repository of approvals, overrides, refusals and deploys."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from bot.state.redis_conn import key, text

# Enough history for any review; the stream trims its oldest entries beyond this.
MAX_ENTRIES = 10_000
STATE_TTL = 90 * 24 * 3600


@dataclass(frozen=True)
class Entry:
    """One audited decision: who did what to which PR head, and why."""

    kind: str  # approve-evaluate, override, refuse, retrain, deploy, ...
    user: str
    pr: int
    sha: str
    detail: str = ""
    at: float = 0.0


def record(conn: redis.Redis, repo: str, entry: Entry) -> Entry:
    """Append `entry` (stamped now) to the repository's stream."""
    stamped = Entry(**{**asdict(entry), "at": entry.at or time.time()})
    fields = {k: str(v) for k, v in asdict(stamped).items()}
    conn.xadd(key("audit", repo), fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
    return stamped


def entries(conn: redis.Redis, repo: str, count: int = 100) -> list[Entry]:
    """The newest `count` entries, oldest first."""
    raw: list[tuple[Any, dict[Any, Any]]] = conn.xrevrange(key("audit", repo), count=count)  # type: ignore[assignment]
    found = []
    for _, fields in reversed(raw):
        values = {text(k): text(v) for k, v in fields.items()}
        found.append(
            Entry(
                kind=values["kind"],
                user=values["user"],
                pr=int(values["pr"]),
                sha=values["sha"],
                detail=values.get("detail", ""),
                at=float(values["at"]),
            )
        )
    return found


def _decision_key(kind: str, repo: str, pr: int, sha: str) -> str:
    return key(kind, repo, pr, sha)


def set_decision(conn: redis.Redis, kind: str, repo: str, entry: Entry) -> None:
    """Remember the latest decision of a kind (an approval, an override) for one head sha."""
    value = json.dumps(asdict(entry))
    conn.set(_decision_key(kind, repo, entry.pr, entry.sha), value, ex=STATE_TTL)


def decision(conn: redis.Redis, kind: str, repo: str, pr: int, sha: str) -> Entry | None:
    """The decision of that kind for exactly this head sha: a new push needs a new one."""
    raw = conn.get(_decision_key(kind, repo, pr, sha))
    return Entry(**json.loads(raw)) if raw is not None else None
