"""Which delivery acts on each PR comment: a comment's commands run once, whatever redelivers it."""

from __future__ import annotations

import redis

from bot.state.redis_conn import key, text

# Longer than GitHub keeps deliveries for redelivery (3 days) and than rq retries a job.
CLAIM_TTL = 7 * 24 * 3600


def claim(conn: redis.Redis, repo: str, comment_id: int, delivery_id: str) -> bool:
    """True if the commands of comment `comment_id` are this delivery's to run.

    The first delivery claims the comment; a retry of that same delivery's job may run again,
    but the same comment under another delivery id (a replay, a redelivery GitHub gave a new
    id) does nothing.
    """
    name = key("comment", repo.lower(), comment_id, "claim")
    with conn.pipeline() as pipe:
        pipe.set(name, delivery_id, nx=True, ex=CLAIM_TTL)
        pipe.get(name)
        _, owner = pipe.execute()
    return owner is not None and text(owner) == delivery_id
