"""The Redis token bucket and installation pauses, against a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from bot.state import pacing
from bot.state.redis_conn import key


def test_a_full_bucket_lets_a_burst_of_capacity_through_without_waiting(
    redis_conn: redis.Redis,
) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=10, rate=1.0)

    waits = [bucket.reserve(42) for _ in range(10)]

    assert waits == [0.0] * 10


def test_requests_after_the_burst_wait_one_interval_each(redis_conn: redis.Redis) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=10, rate=1.0)
    started = time.monotonic()
    for _ in range(10):
        bucket.reserve(42)

    eleventh, twelfth = bucket.reserve(42), bucket.reserve(42)
    elapsed = time.monotonic() - started

    # Counted from the first token taken, which was at most `elapsed` ago.
    assert 1.0 - elapsed - 0.01 <= eleventh <= 1.0
    assert 2.0 - elapsed - 0.01 <= twelfth <= 2.0


def test_the_bucket_refills_at_the_rate(redis_conn: redis.Redis) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=2, rate=4.0)
    assert [bucket.reserve(1), bucket.reserve(1)] == [0.0, 0.0]
    assert bucket.reserve(1) > 0

    time.sleep(0.8)  # the three tokens taken, 250 ms each, are back

    assert [bucket.reserve(1), bucket.reserve(1)] == [0.0, 0.0]


def test_installations_have_separate_buckets(redis_conn: redis.Redis) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=1, rate=1.0)

    assert bucket.reserve(1) == 0.0
    assert bucket.reserve(2) == 0.0
    assert bucket.reserve("app") == 0.0
    assert bucket.reserve(1) > 0.5


def test_two_bucket_objects_share_one_bucket_through_redis(redis_conn: redis.Redis) -> None:
    first = pacing.TokenBucket(redis_conn, capacity=2, rate=1.0)
    second = pacing.TokenBucket(redis_conn, capacity=2, rate=1.0)

    assert first.reserve(7) == 0.0
    assert second.reserve(7) == 0.0
    assert first.reserve(7) > 0.5


def test_concurrent_reservations_queue_up_one_interval_apart(redis_conn: redis.Redis) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=10, rate=1.0)
    start = threading.Barrier(20)
    waits: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        start.wait()
        wait = bucket.reserve(42)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    waits.sort()
    assert waits[:10] == [0.0] * 10
    # The script is atomic: every waiting caller got its own slot, one second apart.
    for n, wait in enumerate(waits[10:], start=1):
        assert n - 1 < wait <= n


def test_the_bucket_key_expires_once_it_would_be_full_again(redis_conn: redis.Redis) -> None:
    bucket = pacing.TokenBucket(redis_conn, capacity=10, rate=1.0)
    bucket.reserve(42)

    ttl = redis_conn.pttl(key("pace", 42))

    assert 0 < ttl <= 1001


def test_bucket_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="capacity"):
        pacing.TokenBucket(redis.Redis(), capacity=0)
    with pytest.raises(ValueError, match="rate"):
        pacing.TokenBucket(redis.Redis(), rate=0)


def test_a_pause_is_seen_by_every_connection_until_it_ends(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    other = redis.Redis.from_url(redis_url)
    try:
        pacing.pause(redis_conn, 42, 0.3)

        assert 0.2 < pacing.pause_remaining(other, 42) <= 0.3
        assert pacing.pause_remaining(other, 43) == 0.0
        time.sleep(0.35)
        assert pacing.pause_remaining(other, 42) == 0.0
    finally:
        other.close()


def test_a_shorter_pause_does_not_cut_a_longer_one_short(redis_conn: redis.Redis) -> None:
    pacing.pause(redis_conn, 42, 10)
    pacing.pause(redis_conn, 42, 1)

    assert pacing.pause_remaining(redis_conn, 42) > 9

    pacing.pause(redis_conn, 42, 20)

    assert pacing.pause_remaining(redis_conn, 42) > 19
