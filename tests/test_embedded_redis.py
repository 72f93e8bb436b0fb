from __future__ import annotations

import redis
from rq import Queue, SimpleWorker

from bot.embedded_redis import EmbeddedRedis


def double(x: int) -> int:
    return x * 2


def test_embedded_redis_runs_rq_jobs_and_is_removed_on_stop() -> None:
    embedded = EmbeddedRedis().start()
    conn = redis.Redis.from_url(embedded.url)
    queue = Queue("t", connection=conn)
    job = queue.enqueue(double, 21)
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert job.return_value() == 42
    embedded.stop()
    try:
        conn.ping()
        raise AssertionError("redis still answers after stop")
    except redis.ConnectionError:
        pass
