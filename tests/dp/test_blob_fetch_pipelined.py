"""BlobFetcher on blobs large enough for its two-thread pipeline, from the real content server.

The pipeline (receive and write on one thread, hash on another) must keep every guarantee of
the single-thread path: the bytes renamed into place are the bytes hashed, a `.part` resumes
with Range, the manifest size is a hard stop, and nothing unverified gets the final name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from quartermaster.core.blob_transfer import PIPELINE_MIN, BlobFetcher, TransferError
from quartermaster.core.errors import HashMismatch, IntegrityError
from quartermaster.core.store_layout import blob_url
from tests.dp.dp_fixtures import Serve, put_raw_blob, random_bytes

SIZE = 2 * PIPELINE_MIN + 12_345  # several buffers and a short last one


@pytest.fixture(scope="module")
def data() -> bytes:
    return random_bytes(SIZE)


def test_a_large_blob_arrives_whole_and_verified(tmp_path: Path, serve: Serve,
                                                 data: bytes) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    seen: list[int] = []
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, seen.append)
    assert dest.read_bytes() == data
    assert result.bytes_transferred == SIZE and sum(seen) == SIZE
    assert not dest.with_name(sha + ".part").exists()


def test_a_large_part_file_is_resumed_with_range(tmp_path: Path, serve: Serve,
                                                 data: bytes) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    dest.parent.mkdir()
    have = PIPELINE_MIN + 7
    dest.with_name(sha + ".part").write_bytes(data[:have])
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=False)
    assert result.resumed_from == have and result.bytes_transferred == SIZE - have
    assert server.blob_hits(sha)[-1].range == f"bytes={have}-"
    assert dest.read_bytes() == data


def test_one_flipped_byte_deep_in_the_stream_is_caught(tmp_path: Path, serve: Serve,
                                                       data: bytes) -> None:
    bad = bytearray(data)
    bad[SIZE - 3] ^= 0xFF
    sha = hashlib.sha256(data).hexdigest()
    put_raw_blob(tmp_path / "store", bytes(bad), name=sha)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(HashMismatch):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE)
    assert not dest.exists() and not dest.with_name(sha + ".part").exists()


def test_more_bytes_than_the_manifest_size_are_refused(tmp_path: Path, serve: Serve,
                                                       data: bytes) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(IntegrityError):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE - 1)
    assert not dest.exists()


def test_fewer_bytes_than_the_manifest_size_keep_a_part_to_resume(
        tmp_path: Path, serve: Serve, data: bytes) -> None:
    short = data[: SIZE - 100]
    sha = hashlib.sha256(data).hexdigest()
    put_raw_blob(tmp_path / "store", short, name=sha)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(TransferError):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE)
    assert not dest.exists()
    assert dest.with_name(sha + ".part").read_bytes() == short
    put_raw_blob(tmp_path / "store", data, name=sha)  # the source now holds all of it
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE)
    assert result.resumed_from == SIZE - 100 and dest.read_bytes() == data
