"""The client writes a chunked file into its cache once, from fetched chunks and the chunks it
holds, and uses nothing that fails its hash."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from quartermaster.client.cache import ContentCache
from quartermaster.client.chunk_assembly import Assembly
from quartermaster.client.work_layout import lay_out
from quartermaster.core.errors import HashMismatch
from quartermaster.core.manifest import ChunkEntry, FileEntry, Manifest
from quartermaster.site.content_chunks import Chunker


def _chunked(data: bytes, path: str = "disk.img") -> FileEntry:
    chunks = tuple(
        ChunkEntry(
            c.offset, c.length, hashlib.sha256(data[c.offset : c.offset + c.length]).hexdigest()
        )
        for c in Chunker().cut_all(data)
    )
    return FileEntry(path, len(data), 0o644, hashlib.sha256(data).hexdigest(), chunks)


def _manifest(*entries: FileEntry, version: int = 1) -> Manifest:
    return Manifest("QM1", "QM100001", version, entries)


def _chunk_blobs(cache: ContentCache, data: bytes, entry: FileEntry) -> None:
    """Each chunk as a blob of its own, as a store without pack requests leaves them."""
    for chunk in entry.chunks:
        path = cache.blob_path(chunk.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[chunk.offset : chunk.offset + chunk.length])


def _fetch(cache: ContentCache, data: bytes, entry: FileEntry) -> tuple[dict[str, int], list[str]]:
    """What a download does: the chunks asked for, each handed over as it arrives."""
    assembly = Assembly(cache, _manifest(entry))
    needed = assembly.needed()
    assembly.open()
    for chunk in entry.chunks:
        if chunk.sha256 in needed:
            assert assembly.place(chunk.sha256, data[chunk.offset : chunk.offset + chunk.length])
    return needed, assembly.finish()


DATA = random.Random(3).randbytes(5 * 1024 * 1024 + 77)


def test_fetched_chunks_are_written_once_into_the_file_the_cache_holds(tmp_path: Path) -> None:
    entry = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    needed, made = _fetch(cache, DATA, entry)
    assert needed == {c.sha256: c.length for c in entry.chunks}
    assert made == [entry.sha256]
    assert cache.blob_path(entry.sha256).read_bytes() == DATA
    assert not any(cache.has(c.sha256) for c in entry.chunks)  # no second copy, no inodes
    assert cache.blob_path(entry.sha256).stat().st_mode & 0o777 == 0o444
    folder = lay_out(_manifest(entry), cache, tmp_path / "work", "QM120000", verified=made)
    assert (folder / "disk.img").read_bytes() == DATA
    assert (folder / "disk.img").stat().st_mode & 0o777 == 0o644
    assert (folder / "disk.img").stat().st_ino == cache.blob_path(entry.sha256).stat().st_ino


def test_chunks_cached_on_their_own_are_copied_in_and_then_removed(tmp_path: Path) -> None:
    entry = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    _chunk_blobs(cache, DATA, entry)
    needed, made = _fetch(cache, DATA, entry)
    assert needed == {} and made == [entry.sha256]
    assert cache.blob_path(entry.sha256).read_bytes() == DATA
    assert not any(cache.has(c.sha256) for c in entry.chunks)


def test_a_new_version_reads_its_unchanged_chunks_from_the_file_held(tmp_path: Path) -> None:
    first = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    _fetch(cache, DATA, first)
    changed = bytearray(DATA)
    changed[2_000_000:2_001_000] = random.Random(5).randbytes(1000)
    second = _chunked(bytes(changed))
    new = {c.sha256 for c in second.chunks} - {c.sha256 for c in first.chunks}
    assert 1 <= len(new) <= 2

    needed, made = _fetch(ContentCache(tmp_path / "cache", 10**10), bytes(changed), second)

    assert set(needed) == new  # only what changed is asked for
    assert made == [second.sha256]
    assert cache.blob_path(second.sha256).read_bytes() == bytes(changed)
    assert cache.blob_path(first.sha256).read_bytes() == DATA  # the first stays as it was


def test_a_damaged_file_held_is_named_removed_and_nothing_is_put_in_place(
    tmp_path: Path,
) -> None:
    first = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    _fetch(cache, DATA, first)
    held = cache.blob_path(first.sha256)
    damaged = bytearray(held.read_bytes())
    bad = first.chunks[3]
    damaged[bad.offset + 10] ^= 0xFF  # same length, other bytes
    held.chmod(0o644)
    held.write_bytes(bytes(damaged))
    changed = bytearray(DATA)
    changed[-1000:] = bytes(1000)
    second = _chunked(bytes(changed))
    assert bad in second.chunks

    with pytest.raises(HashMismatch) as raised:
        _fetch(ContentCache(tmp_path / "cache", 10**10), bytes(changed), second)

    assert raised.value.expected == bad.sha256
    assert not cache.has(first.sha256)  # where the damage came from is gone
    assert not cache.has(second.sha256)
    assert not held.with_name(f"{second.sha256}.part").exists()
    # obtained again (what the client does next): the chunk is now asked for
    assert bad.sha256 in Assembly(cache, _manifest(second)).needed()


@pytest.mark.parametrize("change", ["other bytes", "shorter", "gone"])
def test_a_chunk_cached_on_its_own_that_is_damaged_short_or_gone_is_named(
    tmp_path: Path, change: str
) -> None:
    entry = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    _chunk_blobs(cache, DATA, entry)
    bad = entry.chunks[2]
    assembly = Assembly(cache, _manifest(entry))
    assert assembly.needed() == {}
    path = cache.blob_path(bad.sha256)
    data = path.read_bytes()
    if change == "gone":
        path.unlink()
    else:
        path.write_bytes(data[:-1] if change == "shorter" else b"x" + data[1:])
    with pytest.raises(HashMismatch) as raised:
        assembly.open()
        assembly.finish()
    assert raised.value.expected == bad.sha256
    assert not cache.has(entry.sha256) and not cache.has(bad.sha256)


def test_a_chunk_list_that_does_not_make_the_signed_file_is_never_used(tmp_path: Path) -> None:
    """Every chunk matches its own hash, but together they are not the file: refused."""
    entry = _chunked(DATA)
    other = random.Random(4).randbytes(len(DATA))
    wrong = FileEntry(
        entry.path, entry.size, entry.mode, hashlib.sha256(other).hexdigest(), entry.chunks
    )
    cache = ContentCache(tmp_path / "cache", 10**10)
    with pytest.raises(HashMismatch) as raised:
        _fetch(cache, DATA, wrong)
    assert raised.value.expected == wrong.sha256
    assert not cache.has(wrong.sha256)
    assert list((tmp_path / "cache").rglob("*.part")) == []


def test_a_stopped_assembly_keeps_its_chunks_for_the_next_run(tmp_path: Path) -> None:
    entry = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    assembly = Assembly(cache, _manifest(entry))
    assembly.open()
    half = entry.chunks[: len(entry.chunks) // 2]
    for chunk in half:
        assembly.place(chunk.sha256, DATA[chunk.offset : chunk.offset + chunk.length])
    assembly.stop()  # a paused schedule, a stop, a failed download

    needed, made = _fetch(ContentCache(tmp_path / "cache", 10**10), DATA, entry)

    assert set(needed) == {c.sha256 for c in entry.chunks} - {c.sha256 for c in half}
    assert made == [entry.sha256]
    assert cache.blob_path(entry.sha256).read_bytes() == DATA


def test_a_chunk_map_that_lies_about_the_partial_file_costs_a_download_not_the_file(
    tmp_path: Path,
) -> None:
    """The map of a stopped assembly says a chunk is in place that is not: the whole file's
    hash catches it, the `.part` goes, and the next attempt fetches everything again."""
    entry = _chunked(DATA)
    cache = ContentCache(tmp_path / "cache", 10**10)
    assembly = Assembly(cache, _manifest(entry))
    assembly.open()
    first = entry.chunks[0]
    assembly.place(first.sha256, DATA[: first.length])
    assembly.stop()
    cache.write_chunk_map(
        entry.sha256, [(c.sha256, c.offset, c.length) for c in entry.chunks[:2]], partial=True
    )
    with pytest.raises(HashMismatch) as raised:
        _fetch(ContentCache(tmp_path / "cache", 10**10), DATA, entry)
    assert raised.value.expected == entry.chunks[1].sha256
    needed, made = _fetch(ContentCache(tmp_path / "cache", 10**10), DATA, entry)
    assert len(needed) == len(entry.chunks) and made == [entry.sha256]
    assert cache.blob_path(entry.sha256).read_bytes() == DATA
