"""What keeps the test processes of `make test` out of each other's way (tests/parallel.py)."""

import pytest

from tests.parallel import loopback, redis_url


def test_each_worker_takes_its_own_redis_database_above_the_first():
    base = "redis://127.0.0.1:6379/8"
    assert [redis_url(base, worker) for worker in range(3)] == [
        "redis://127.0.0.1:6379/8",
        "redis://127.0.0.1:6379/9",
        "redis://127.0.0.1:6379/10",
    ]
    assert redis_url("redis://127.0.0.1:6379", 2) == "redis://127.0.0.1:6379/2"


def test_a_worker_beyond_the_last_redis_database_is_told_what_to_change():
    with pytest.raises(RuntimeError, match=r"would need Redis database 16 .* run fewer workers"):
        redis_url("redis://127.0.0.1:6379/8", 8)


def test_each_worker_has_its_own_loopback_block():
    assert [loopback(22, worker) for worker in range(3)] == ["127.0.0.22", "127.0.1.22", "127.0.2.22"]
