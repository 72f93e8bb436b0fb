"""Whether a PR comment's one reply went out: a command's job run again after the reply's POST
(a worker killed, Redis lost, a later write failing) posts no second reply."""

from __future__ import annotations

from typing import Literal

import redis

from bot.state.comment_claims import CLAIM_TTL
from bot.state.redis_conn import key, text

ReplyState = Literal["new", "unsure", "posted"]


def start(conn: redis.Redis, repo: str, comment_id: int) -> ReplyState:
    """Mark comment `comment_id`'s reply as being posted. "new": nobody tried before; "posted":
    it went out; "unsure": an earlier try began and never said how it ended (its POST may
    have reached GitHub)."""
    name = key("comment", repo.lower(), comment_id, "reply")
    with conn.pipeline() as pipe:
        pipe.set(name, "posting", nx=True, ex=CLAIM_TTL)
        pipe.get(name)
        created, value = pipe.execute()
    if created:
        return "new"
    return "posted" if value is not None and text(value) == "posted" else "unsure"


def posted(conn: redis.Redis, repo: str, comment_id: int) -> None:
    conn.set(key("comment", repo.lower(), comment_id, "reply"), "posted", ex=CLAIM_TTL)
