"""The per-process caches of policy entries and manifests belong to one database: a process
that serves one site after another (as a test worker does) never answers from the other's."""

from __future__ import annotations

from quartermaster.site.serial_cache import SerialCache


def test_the_same_serial_of_two_databases_is_two_caches() -> None:
    cache: SerialCache[str, str] = SerialCache(8)
    assert cache.get("sqlite:///a/site.db", 7, "entries", lambda: "of a") == "of a"
    assert cache.get("sqlite:///b/site.db", 7, "entries", lambda: "of b") == "of b"
    assert cache.get("sqlite:///b/site.db", 7, "entries", lambda: "loaded again") == "of b"


def test_a_new_serial_starts_again_and_an_older_one_is_not_kept() -> None:
    cache: SerialCache[str, str] = SerialCache(8)
    cache.get("db", 8, "entries", lambda: "at 8")
    assert cache.get("db", 9, "entries", lambda: "at 9") == "at 9"
    assert cache.get("db", 8, "entries", lambda: "read at 8") == "read at 8"
    assert cache.get("db", 9, "entries", lambda: "loaded again") == "at 9"
