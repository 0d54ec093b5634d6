"""BlobFetcher on blobs large enough for its two-thread pipelines, from the real content server.

Both pipelines (durable: receive and write a ring of buffers; not durable: receive into the
file's mapped pages), with hashing on a second thread, must keep every guarantee of the
single-thread path: the bytes renamed into place are the bytes hashed, a `.part` resumes
with Range, the manifest size is a hard stop, and nothing unverified gets the final name.
"""

from __future__ import annotations

import errno
import hashlib
import os
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


@pytest.fixture(params=[True, False], ids=["durable", "mapped"])
def durable(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_a_large_blob_arrives_whole_and_verified(
    tmp_path: Path, serve: Serve, data: bytes, durable: bool
) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    seen: list[int] = []
    result = BlobFetcher().fetch(
        blob_url(server.url, sha), dest, sha, SIZE, seen.append, durable=durable
    )
    assert dest.read_bytes() == data
    assert result.bytes_transferred == SIZE and sum(seen) == SIZE
    assert not dest.with_name(sha + ".part").exists()


def test_a_large_part_file_is_resumed_with_range(
    tmp_path: Path, serve: Serve, data: bytes, durable: bool
) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    dest.parent.mkdir()
    have = 7  # not at a page boundary, for the mapped path
    dest.with_name(sha + ".part").write_bytes(data[:have])
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=durable)
    assert result.resumed_from == have and result.bytes_transferred == SIZE - have
    assert server.blob_hits(sha)[-1].range == f"bytes={have}-"
    assert dest.read_bytes() == data


def test_one_flipped_byte_deep_in_the_stream_is_caught(
    tmp_path: Path, serve: Serve, data: bytes, durable: bool
) -> None:
    bad = bytearray(data)
    bad[SIZE - 3] ^= 0xFF
    sha = hashlib.sha256(data).hexdigest()
    put_raw_blob(tmp_path / "store", bytes(bad), name=sha)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(HashMismatch):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=durable)
    assert not dest.exists() and not dest.with_name(sha + ".part").exists()


def test_more_bytes_than_the_manifest_size_are_refused(
    tmp_path: Path, serve: Serve, data: bytes, durable: bool
) -> None:
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(IntegrityError):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE - 1, durable=durable)
    assert not dest.exists()


def test_fewer_bytes_than_the_manifest_size_keep_a_part_to_resume(
    tmp_path: Path, serve: Serve, data: bytes, durable: bool
) -> None:
    short = data[: SIZE - 100]
    sha = hashlib.sha256(data).hexdigest()
    put_raw_blob(tmp_path / "store", short, name=sha)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    with pytest.raises(TransferError):
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=durable)
    assert not dest.exists()
    assert dest.with_name(sha + ".part").read_bytes() == short  # cut back to what arrived
    put_raw_blob(tmp_path / "store", data, name=sha)  # the source now holds all of it
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=durable)
    assert result.resumed_from == SIZE - 100 and dest.read_bytes() == data


def test_a_full_size_part_left_by_a_killed_transfer_is_not_trusted(
    tmp_path: Path, serve: Serve, data: bytes
) -> None:
    """A killed mapped transfer leaves its `.part` reserved at full size, the tail zeros."""
    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    dest.parent.mkdir()
    dest.with_name(sha + ".part").write_bytes(data[:PIPELINE_MIN] + bytes(SIZE - PIPELINE_MIN))
    result = BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=False)
    assert result.resumed_from == 0 and result.bytes_transferred == SIZE
    assert server.blob_hits(sha)[-1].range == ""
    assert dest.read_bytes() == data


def test_a_full_disk_is_reported_as_such(
    tmp_path: Path, serve: Serve, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sha = put_raw_blob(tmp_path / "store", data)
    server = serve(tmp_path / "store")
    dest = tmp_path / "out" / sha
    monkeypatch.setattr(os, "posix_fallocate", no_space)  # reserving is where a full disk shows
    with pytest.raises(TransferError) as caught:
        BlobFetcher().fetch(blob_url(server.url, sha), dest, sha, SIZE, durable=False)
    assert "no space left" in str(caught.value) and "free disk space" in caught.value.hint
    assert not dest.exists()
    assert dest.with_name(sha + ".part").stat().st_size == 0  # nothing reserved is trusted
