"""The content cache: least recently used blobs go first; pinned blobs never go."""

from __future__ import annotations

import os
from pathlib import Path

from quartermaster.client.cache import ContentCache
from quartermaster.core.hashing import sha256_bytes


def put(cache: ContentCache, data: bytes, last_used: float, partial: bool = False) -> str:
    sha = sha256_bytes(data)
    path = cache.blob_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    if partial:
        path = path.with_name(path.name + ".part")
    path.write_bytes(data)
    os.utime(path, (last_used, last_used))
    return sha


def test_eviction_removes_least_recently_used_blobs_first(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=300)
    oldest = put(cache, b"a" * 100, 1000)
    newest = put(cache, b"b" * 100, 3000)
    middle = put(cache, b"c" * 100, 2000)
    evicted = cache.make_room(150)
    assert evicted == [oldest, middle]
    assert cache.has(newest) and not cache.has(oldest) and not cache.has(middle)


def test_using_a_blob_protects_it_from_eviction(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=200)
    first = put(cache, b"a" * 100, 1000)
    second = put(cache, b"b" * 100, 2000)
    cache.touch(first, 3000)
    assert cache.make_room(100) == [second]
    assert cache.has(first)


def test_pinned_blobs_are_never_evicted_even_over_the_limit(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=100)
    pinned_old = put(cache, b"a" * 100, 1000)
    other = put(cache, b"b" * 100, 2000)
    evicted = cache.make_room(100, pinned={pinned_old})
    assert evicted == [other]
    assert cache.has(pinned_old)
    assert cache.used_bytes() == 100  # above the limit with the incoming bytes: pinning wins


def test_nothing_is_evicted_while_the_cache_is_within_its_limit(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=1000)
    kept = [put(cache, bytes([n]) * 100, 1000 + n) for n in range(5)]
    assert cache.make_room(500) == []
    assert all(cache.has(sha) for sha in kept)


def test_partial_transfers_count_towards_the_limit_and_are_evicted_by_age(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=250)
    stale_partial = put(cache, b"p" * 100, 500, partial=True)
    blob = put(cache, b"q" * 100, 1000)
    assert cache.used_bytes() == 200
    assert cache.make_room(100) == [stale_partial]
    assert cache.has(blob)
    assert not any(e.partial for e in cache.entries())


def test_removing_a_blob_removes_its_partial_transfer_too(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path, limit_bytes=1000)
    sha = put(cache, b"x" * 10, 1000)
    put(cache, b"x" * 10, 1000, partial=True)
    cache.remove(sha)
    assert cache.entries() == []
