"""The client lays a chunked file out from cached chunks, and uses nothing that fails its hash."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from quartermaster.client.cache import ContentCache
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


def _cache(tmp_path: Path, data: bytes, entry: FileEntry) -> ContentCache:
    cache = ContentCache(tmp_path / "cache", 10**10)
    for chunk in entry.chunks:
        path = cache.blob_path(chunk.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[chunk.offset : chunk.offset + chunk.length])
    return cache


DATA = random.Random(3).randbytes(5 * 1024 * 1024 + 77)


def test_a_chunked_file_is_assembled_from_its_cached_chunks(tmp_path: Path) -> None:
    entry = _chunked(DATA)
    cache = _cache(tmp_path, DATA, entry)
    manifest = Manifest("QM1", "QM100001", 1, (entry,))
    folder = lay_out(manifest, cache, tmp_path / "work", "QM120000")
    assert (folder / "disk.img").read_bytes() == DATA
    assert (folder / "disk.img").stat().st_mode & 0o777 == 0o644
    assert not cache.has(entry.sha256)  # the cache holds chunks, not a second whole copy


def test_a_damaged_cached_chunk_is_named_and_nothing_is_laid_out(tmp_path: Path) -> None:
    entry = _chunked(DATA)
    cache = _cache(tmp_path, DATA, entry)
    bad = entry.chunks[7]
    damaged = bytearray(cache.blob_path(bad.sha256).read_bytes())
    damaged[100] ^= 0xFF  # same length, other bytes
    cache.blob_path(bad.sha256).write_bytes(bytes(damaged))
    with pytest.raises(HashMismatch) as raised:
        lay_out(Manifest("QM1", "QM100001", 1, (entry,)), cache, tmp_path / "work", "QM120000")
    assert raised.value.expected == bad.sha256  # the caller removes it and fetches it again
    assert not (tmp_path / "work" / "QM120000").exists()


@pytest.mark.parametrize("change", ["longer", "shorter", "gone"])
def test_a_cached_chunk_of_the_wrong_length_or_missing_is_named(
    tmp_path: Path, change: str
) -> None:
    entry = _chunked(DATA)
    cache = _cache(tmp_path, DATA, entry)
    bad = entry.chunks[2]
    path = cache.blob_path(bad.sha256)
    if change == "gone":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data + b"x" if change == "longer" else data[:-1])
    with pytest.raises(HashMismatch) as raised:
        lay_out(Manifest("QM1", "QM100001", 1, (entry,)), cache, tmp_path / "work", "QM120000")
    assert raised.value.expected == bad.sha256


def test_a_chunk_list_that_does_not_make_the_signed_file_is_never_used(tmp_path: Path) -> None:
    """Every chunk matches its own hash, but together they are not the file: refused."""
    entry = _chunked(DATA)
    other = random.Random(4).randbytes(len(DATA))
    wrong = FileEntry(
        entry.path, entry.size, entry.mode, hashlib.sha256(other).hexdigest(), entry.chunks
    )
    cache = _cache(tmp_path, DATA, entry)
    with pytest.raises(HashMismatch) as raised:
        lay_out(Manifest("QM1", "QM100001", 1, (wrong,)), cache, tmp_path / "work", "QM120000")
    assert raised.value.expected == wrong.sha256
    assert not (tmp_path / "work" / "QM120000").exists()
