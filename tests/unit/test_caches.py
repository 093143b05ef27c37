"""BoundedCache: never more than its limit, the least recently used out first, safe across
threads."""

from __future__ import annotations

import threading

import pytest

from credit_gateway.caches import BoundedCache


def test_it_holds_at_most_its_limit_and_evicts_the_least_recently_used() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # "a" is now the most recently used; "b" the least
    cache.put("d", 3)
    assert len(cache) == 3
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (0, 2, 3)


def test_putting_a_key_again_replaces_its_value_and_refreshes_it() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)  # evicts "b", the older one
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (10, None, 3)


def test_get_or_make_makes_once_and_caches_nothing_when_making_fails() -> None:
    cache: BoundedCache[str, int] = BoundedCache(4)
    made: list[str] = []

    def make() -> int:
        made.append("x")
        return 7

    assert cache.get_or_make("x", make) == 7
    assert cache.get_or_make("x", make) == 7
    assert made == ["x"]

    def fail() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        cache.get_or_make("y", fail)
    assert cache.get("y") is None
    assert len(cache) == 1


def test_discard_and_clear() -> None:
    cache: BoundedCache[str, int] = BoundedCache(4)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.discard("a")
    cache.discard("never there")
    assert (cache.get("a"), cache.get("b")) == (None, 2)
    cache.clear()
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BoundedCache(0)


def test_threads_putting_and_getting_at_once_keep_it_within_its_limit() -> None:
    cache: BoundedCache[int, int] = BoundedCache(100)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            barrier.wait()
            for i in range(2_000):
                key = (offset * 7_919 + i) % 500
                cache.put(key, key)
                value = cache.get(key // 2)
                assert value is None or value == key // 2
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 100
