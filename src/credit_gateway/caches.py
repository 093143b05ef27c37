"""The one size-bounded cache: at most `limit` entries, the least recently used evicted first.

LRU rather than clear-on-full: clearing a full cache makes every live caller pay again at once
(every token re-verified in the same second), and lets whoever can fill it (distinct subject
codes, say) empty it for everyone; LRU evicts one cold entry at a time. Thread-safe, since its
users run on the event loop and on the database threads alike; a hit costs one lock and one
`move_to_end`. It holds pure values (what a key always yields), so a value made twice by two
threads at once is harmless and `get_or_make` makes it outside the lock. None is not a value:
`get` answers it for a miss.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    __slots__ = ("_entries", "_lock", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a cache holds at least one entry")
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or `make()`'s, cached. An exception from `make` caches nothing."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def discard(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
