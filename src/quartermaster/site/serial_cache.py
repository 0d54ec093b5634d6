"""Per-process caches that stay right when several site processes share one database.

Every change that can alter what such a cache holds bumps the policy serial in its own
transaction, and callers read the serial in their transaction before the cached data. An
entry is therefore good exactly while the serial the caller read is the one it was cached
under: a change made through another process shows up as a new serial at the next request,
and the cache starts again.

The serial numbers one database, not the world: a process that serves another site's
database (a test worker runs one site after another) starts the cache again as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SerialCache(Generic[K, V]):
    """At most `size` values of one database's policy serial; `load` runs outside the lock."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._database = ""
        self._serial = -1
        self._entries: dict[K, V] = {}
        self._size = size

    def get(self, database: str, serial: int, key: K, load: Callable[[], V]) -> V:
        """The value of `key` under `serial` of `database` (its URL), loaded when not cached."""
        with self._lock:
            if (database, serial) == (self._database, self._serial) and key in self._entries:
                return self._entries[key]
        value = load()
        with self._lock:
            if database != self._database or serial > self._serial:
                self._database, self._serial, self._entries = database, serial, {}
            if serial == self._serial and len(self._entries) < self._size:
                self._entries[key] = value
        return value
