"""Chunked large files: where the cuts fall, the manifest's chunk list, and attacks on it."""

from __future__ import annotations

import copy
import errno
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from quartermaster.core.chunking import MAX_CHUNKS_PER_FILE, MAXIMUM, MINIMUM
from quartermaster.core.errors import InvalidInput, SignatureError
from quartermaster.core.manifest import ChunkEntry, FileEntry, Manifest
from quartermaster.core.signing import SigningKey, verify_envelope
from quartermaster.site import content_library
from quartermaster.site.content_chunks import Chunker
from quartermaster.site.content_library import ContentLibrary


def _data(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _chunk_hashes(data: bytes) -> list[str]:
    return [
        hashlib.sha256(data[c.offset : c.offset + c.length]).hexdigest()
        for c in Chunker().cut_all(data)
    ]


def test_cuts_cover_the_data_within_the_size_limits() -> None:
    data = _data(4 * 1024 * 1024)
    cuts = Chunker().cut_all(data)
    assert cuts[0].offset == 0
    assert sum(c.length for c in cuts) == len(data)
    assert all(a.offset + a.length == b.offset for a, b in zip(cuts, cuts[1:], strict=False))
    assert all(MINIMUM <= c.length <= MAXIMUM for c in cuts[:-1])


def test_one_byte_inserted_at_the_start_changes_at_most_three_chunks() -> None:
    data = _data(8 * 1024 * 1024)
    before = set(_chunk_hashes(data))
    after = _chunk_hashes(b"\x01" + data)
    assert len([h for h in after if h not in before]) <= 3


def test_a_change_in_the_middle_changes_only_the_chunks_near_it() -> None:
    data = bytearray(_data(8 * 1024 * 1024))
    before = set(_chunk_hashes(bytes(data)))
    data[4_000_000:4_000_100] = bytes(100)
    after = _chunk_hashes(bytes(data))
    assert len([h for h in after if h not in before]) <= 2


def test_cutting_buffer_by_buffer_gives_the_cuts_of_the_whole(tmp_path: Path) -> None:
    """The snapshot reads 8 MiB at a time; its chunks must be those of the whole file."""
    data = _data(20 * 1024 * 1024 + 12345)
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(data)
    snapshot = ContentLibrary(tmp_path / "lib").snapshot(source)
    [entry] = snapshot.files
    assert [c.sha256 for c in entry.chunks] == _chunk_hashes(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.size == len(data)


def _entry(size: int = 300_000) -> FileEntry:
    cuts = [(0, 100_000), (100_000, 100_000), (200_000, size - 200_000)]
    return FileEntry(
        "disk.img",
        size,
        0o644,
        "a" * 64,
        tuple(ChunkEntry(o, n, f"{i:064x}") for i, (o, n) in enumerate(cuts)),
    )


def _manifest(*files: FileEntry) -> Manifest:
    return Manifest("QM1", "QM100001", 2, files)


def test_manifest_with_chunks_round_trips_as_format_3() -> None:
    manifest = _manifest(_entry(), FileEntry("small.txt", 5, 0o644, "b" * 64))
    data = manifest.to_dict()
    assert data["format"] == 3
    assert data["files"][0]["chunks"][1] == {
        "offset": 100_000,
        "length": 100_000,
        "sha256": f"{1:064x}",
    }
    assert "chunks" not in data["files"][1]
    again = Manifest.from_dict(data)
    assert again == manifest
    assert again.package_hash() == manifest.package_hash()
    assert manifest.blobs() == {
        f"{0:064x}": 100_000,
        f"{1:064x}": 100_000,
        f"{2:064x}": 100_000,
        "b" * 64: 5,
    }
    assert manifest.blob_owners()[f"{1:064x}"] == "disk.img (chunk 1 at byte 100000)"


def test_manifest_without_chunks_keeps_its_older_bytes() -> None:
    """Format 1 and 2 manifests hash and sign exactly as before chunks existed."""
    plain = _manifest(FileEntry("a.txt", 5, 0o644, "b" * 64))
    assert plain.canonical_bytes() == (
        b'{"files":[{"mode":420,"path":"a.txt","sha256":"' + b"b" * 64 + b'","size":5}],'
        b'"format":1,"package_id":"QM100001","site_code":"QM1","source_version":2}'
    )
    linked = Manifest("QM1", "QM100001", 2, plain.files, "linux")
    assert linked.to_dict()["format"] == 2


def test_same_content_ignores_how_a_file_was_cut() -> None:
    chunked = _manifest(_entry())
    whole = _manifest(FileEntry("disk.img", 300_000, 0o644, "a" * 64))
    assert chunked.same_content(whole) and whole.same_content(chunked)
    assert not chunked.same_content(_manifest(FileEntry("disk.img", 300_000, 0o644, "c" * 64)))


def test_signature_covers_the_chunk_list() -> None:
    key = SigningKey.generate()
    envelope = key.envelope(_manifest(_entry()).to_dict())
    assert Manifest.from_dict(verify_envelope(envelope, {key.keyid: key.public}))
    forged = copy.deepcopy(envelope)
    forged["signed"]["files"][0]["chunks"][1]["sha256"] = "f" * 64
    with pytest.raises(SignatureError):
        verify_envelope(forged, {key.keyid: key.public})


def _with_chunks(chunks: list[dict[str, Any]], size: int = 300_000, fmt: int = 3) -> dict[str, Any]:
    data = _manifest(_entry()).to_dict()
    data["format"] = fmt
    data["files"][0]["chunks"] = chunks
    data["files"][0]["size"] = size
    return data


def _c(offset: int, length: int, n: int = 0) -> dict[str, Any]:
    return {"offset": offset, "length": length, "sha256": f"{n:064x}"}


@pytest.mark.parametrize(
    ("chunks", "size", "words"),
    [
        ([_c(0, 100_000), _c(100_000, 100_000)], 300_000, "add up to 200000"),
        ([_c(0, 100_000), _c(100_000, 250_000)], 300_000, "add up to 350000"),
        ([_c(0, 100_000), _c(90_000, 210_000)], 300_000, "overlaps"),
        ([_c(0, 100_000), _c(110_000, 190_000)], 300_000, "gap"),
        ([_c(10, 299_990)], 300_000, "gap"),
        ([_c(0, 0), _c(0, 300_000)], 300_000, "length 0"),
        ([_c(0, -5), _c(-5, 300_005)], 300_000, "length -5"),
        ([], 300_000, "empty"),
    ],
)
def test_a_chunk_list_that_does_not_make_the_file_is_refused(
    chunks: list[dict[str, Any]], size: int, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        Manifest.from_dict(_with_chunks(chunks, size))


def test_a_chunk_list_that_is_too_long_is_refused_before_it_is_read() -> None:
    chunks = [_c(0, 1)] * (MAX_CHUNKS_PER_FILE + 1)  # refused by its length alone
    with pytest.raises(InvalidInput, match="more than the"):
        Manifest.from_dict(_with_chunks(chunks, MAX_CHUNKS_PER_FILE + 1))


@pytest.mark.parametrize(
    "bad",
    [
        {"offset": 0, "length": 300_000},
        {"offset": 0, "length": 300_000, "sha256": "zz"},
        {"offset": "0", "length": 300_000, "sha256": "a" * 64},
        {"offset": 0, "length": True, "sha256": "a" * 64},
        {"offset": 0, "length": 300_000, "sha256": "a" * 64, "url": "http://x"},
        [0, 300_000, "a" * 64],
    ],
)
def test_a_malformed_chunk_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        Manifest.from_dict(_with_chunks([bad]))


def test_chunks_in_an_older_format_are_refused() -> None:
    for fmt in (1, 2):
        data = _with_chunks([_c(0, 300_000)], fmt=fmt)
        if fmt == 2:
            data.update(platform="any", links=[])
        with pytest.raises(InvalidInput, match="format"):
            Manifest.from_dict(data)


def test_format_3_without_a_chunked_file_is_refused() -> None:
    data = _manifest(FileEntry("a.txt", 5, 0o644, "b" * 64)).to_dict()
    data.update(format=3, platform="any", links=[])
    with pytest.raises(InvalidInput, match="no chunked file"):
        Manifest.from_dict(data)


def test_a_rename_failure_leaves_only_whole_chunks_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(12 * MAXIMUM)  # about 40 chunks
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(data)
    calls = {"n": 0}
    real = os.replace

    def replace(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError(errno.EIO, "Input/output error")
        real(*args)

    monkeypatch.setattr(content_library.os, "replace", replace)
    with pytest.raises(OSError):
        ContentLibrary(tmp_path / "lib").snapshot(source)
    blobs = list((tmp_path / "lib" / "content").glob("sha256/??/*"))
    assert len(blobs) == 9
    assert all(hashlib.sha256(b.read_bytes()).hexdigest() == b.name for b in blobs)
    assert list((tmp_path / "lib" / "tmp").iterdir()) == []
    monkeypatch.undo()
    again = ContentLibrary(tmp_path / "lib").snapshot(source)  # a retry completes
    [entry] = again.files
    assert {c.sha256 for c in entry.chunks} == {
        b.name for b in (tmp_path / "lib" / "content").glob("sha256/??/*")
    }


def test_an_unchanged_chunked_file_writes_nothing_and_a_repeated_chunk_is_stored_once(
    tmp_path: Path,
) -> None:
    data = bytes(4 * MAXIMUM) + _data(2 * MAXIMUM)  # zeros: the same chunk many times
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(data)
    library = ContentLibrary(tmp_path / "lib")
    first = library.snapshot(source)
    [entry] = first.files
    assert len({c.sha256 for c in entry.chunks}) < len(entry.chunks)
    assert first.new_bytes == sum(first.files[0].blobs().values())
    again = library.snapshot(source)
    assert again.new_bytes == 0 and again.files == first.files


@pytest.mark.parametrize("value", [0, 1000, -1, "4194304", True, 1.5e7])
def test_a_chunk_threshold_that_is_not_a_sound_byte_count_is_refused(
    tmp_path: Path, value: Any
) -> None:
    """config.json's chunk_threshold (written only by whoever administers the site host)."""
    with pytest.raises(InvalidInput, match="chunk_threshold"):
        ContentLibrary(tmp_path / "lib", chunk_threshold=value)


def test_files_up_to_the_chunk_threshold_stay_whole(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(_data(2 * MAXIMUM + 1))
    [whole] = ContentLibrary(tmp_path / "a", chunk_threshold=2 * MAXIMUM + 1).snapshot(source).files
    [chunked] = ContentLibrary(tmp_path / "b", chunk_threshold=2 * MAXIMUM).snapshot(source).files
    assert not whole.chunks and chunked.chunks and whole.same_file(chunked)
