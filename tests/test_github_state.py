"""The Redis state behind the GitHub side: installation tokens, cached files, redelivery counts."""

from __future__ import annotations

import time

import redis

from bot.state import file_cache, installation_tokens, redelivery_attempts
from bot.state.file_cache import CachedFile
from bot.state.redis_conn import key

# -- installation tokens -----------------------------------------------------------------------


def test_a_stored_token_is_read_back_until_forgotten(redis_conn: redis.Redis) -> None:
    assert installation_tokens.cached(redis_conn, 42) is None

    installation_tokens.store(redis_conn, 42, "ghs_one", "2030-01-01T00:00:00Z", 60_000)

    assert installation_tokens.cached(redis_conn, 42) == "ghs_one"
    assert installation_tokens.cached(redis_conn, 43) is None
    installation_tokens.forget(redis_conn, 42)
    assert installation_tokens.cached(redis_conn, 42) is None


def test_a_token_is_kept_only_for_its_time(redis_conn: redis.Redis) -> None:
    installation_tokens.store(redis_conn, 42, "ghs_none_left", "2030-01-01T00:00:00Z", 0)
    assert installation_tokens.cached(redis_conn, 42) is None

    installation_tokens.store(redis_conn, 42, "ghs_brief", "2030-01-01T00:00:00Z", 100)
    assert installation_tokens.cached(redis_conn, 42) == "ghs_brief"
    time.sleep(0.2)
    assert installation_tokens.cached(redis_conn, 42) is None


def test_one_process_at_a_time_holds_the_refresh_lock(redis_conn: redis.Redis) -> None:
    with installation_tokens.refresh_lock(redis_conn, 42, 5_000) as first:
        with installation_tokens.refresh_lock(redis_conn, 42, 5_000) as second:
            with installation_tokens.refresh_lock(redis_conn, 43, 5_000) as other:
                assert (first, second, other) == (True, False, True)

    with installation_tokens.refresh_lock(redis_conn, 42, 5_000) as after_release:
        assert after_release


def test_an_expired_holder_does_not_release_the_next_holders_lock(
    redis_conn: redis.Redis,
) -> None:
    crashed = installation_tokens.refresh_lock(redis_conn, 42, 50)
    assert crashed.__enter__()
    time.sleep(0.1)  # the lock expires, as a crashed holder's would
    successor = installation_tokens.refresh_lock(redis_conn, 42, 5_000)
    assert successor.__enter__()

    crashed.__exit__(None, None, None)

    with installation_tokens.refresh_lock(redis_conn, 42, 5_000) as third:
        assert not third
    successor.__exit__(None, None, None)
    with installation_tokens.refresh_lock(redis_conn, 42, 5_000) as fourth:
        assert fourth


# -- cached files ------------------------------------------------------------------------------

SHA = "a" * 40


def test_a_file_read_is_remembered_present_empty_or_absent(redis_conn: redis.Redis) -> None:
    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "metrics.json") is None

    file_cache.remember(redis_conn, "octo/ml", SHA, "metrics.json", b'{"acc": 1}')
    file_cache.remember(redis_conn, "octo/ml", SHA, "empty.txt", b"")
    file_cache.remember(redis_conn, "octo/ml", SHA, "missing.json", None)

    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "metrics.json") == CachedFile(
        b'{"acc": 1}'
    )
    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "empty.txt") == CachedFile(b"")
    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "missing.json") == CachedFile(None)
    assert file_cache.lookup(redis_conn, "octo/other", SHA, "metrics.json") is None
    assert file_cache.lookup(redis_conn, "octo/ml", "b" * 40, "metrics.json") is None


def test_files_up_to_the_size_limit_are_remembered_and_larger_ones_are_not(
    redis_conn: redis.Redis,
) -> None:
    largest = b"x" * file_cache.CACHE_MAX_BYTES

    file_cache.remember(redis_conn, "octo/ml", SHA, "largest.bin", largest)
    file_cache.remember(redis_conn, "octo/ml", SHA, "too-large.bin", largest + b"x")

    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "largest.bin") == CachedFile(largest)
    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "too-large.bin") is None


def test_a_file_read_is_remembered_by_its_blob_too_unless_absent_or_too_large(
    redis_conn: redis.Redis,
) -> None:
    blob, other, large = "b" * 40, "c" * 40, "d" * 40
    file_cache.remember(redis_conn, "octo/ml", SHA, "metrics.json", b"{}", blob=blob)
    file_cache.remember(redis_conn, "octo/ml", SHA, "missing.json", None, blob=other)
    too_large = b"x" * (file_cache.CACHE_MAX_BYTES + 1)
    file_cache.remember(redis_conn, "octo/ml", SHA, "big.bin", too_large, blob=large)

    assert file_cache.lookup_blob(redis_conn, "octo/ml", blob) == b"{}"
    assert file_cache.lookup(redis_conn, "octo/ml", SHA, "metrics.json") == CachedFile(b"{}")
    assert file_cache.lookup_blob(redis_conn, "octo/ml", other) is None
    assert file_cache.lookup_blob(redis_conn, "octo/ml", large) is None
    assert file_cache.lookup_blob(redis_conn, "octo/other", blob) is None
    assert 0 < redis_conn.ttl(key("blob", "octo/ml", blob)) <= file_cache.CACHE_TTL


# -- redelivery counts -------------------------------------------------------------------------


def test_redeliveries_are_counted_per_guid(redis_conn: redis.Redis) -> None:
    assert redelivery_attempts.counts(redis_conn, []) == {}

    redelivery_attempts.count(redis_conn, "guid-a", 60)
    redelivery_attempts.count(redis_conn, "guid-a", 60)
    redelivery_attempts.count(redis_conn, "guid-b", 60)

    assert redelivery_attempts.counts(redis_conn, ["guid-a", "guid-b", "guid-c", "guid-a"]) == {
        "guid-a": 2,
        "guid-b": 1,
    }


def test_a_redelivery_count_is_forgotten_after_its_time(redis_conn: redis.Redis) -> None:
    redelivery_attempts.count(redis_conn, "guid-a", 1)
    assert redelivery_attempts.counts(redis_conn, ["guid-a"]) == {"guid-a": 1}

    time.sleep(1.1)

    assert redelivery_attempts.counts(redis_conn, ["guid-a"]) == {}
