"""The pack request (POST /content/pack): many blobs in one answer, each verified on receipt,
and what a stranger, a bad list or a missing blob can do with it."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiohttp import web

from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.errors import HashMismatch
from quartermaster.core.pack_transfer import (
    MAX_BLOBS,
    PACK_MEDIA_TYPE,
    PackUnsupported,
    batches,
    fetch_pack,
)
from quartermaster.core.store_layout import blob_path
from quartermaster.dp.content_server import StoreMount
from quartermaster.dp.pack_server import SENDFILE_MIN
from tests.dp.dp_fixtures import Serve, put_raw_blob, random_bytes
from tests.e2e.processes import free_port


def _post(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _store(root: Path, sizes: list[int]) -> dict[str, bytes]:
    blobs = {}
    for size in sizes:
        data = random_bytes(size)
        blobs[put_raw_blob(root, data)] = data
    return blobs


def _records(body: bytes) -> list[tuple[str, bytes | None]]:
    """Parse an answer by its documented framing (docs/protocol.md)."""
    out: list[tuple[str, bytes | None]] = []
    at = 0
    while at < len(body):
        end = body.index(b"\n", at)
        sha, size = body[at:end].decode().split(" ")
        at = end + 1
        if size == "-":
            out.append((sha, None))
            continue
        out.append((sha, body[at : at + int(size)]))
        at += int(size)
    return out


def test_pack_answers_small_and_large_blobs_back_to_back_and_names_the_missing(
    tmp_path: Path, serve: Serve
) -> None:
    blobs = _store(tmp_path, [0, 10, 4000, SENDFILE_MIN, 3 * SENDFILE_MIN + 7])
    absent = "ab" * 32
    asked = [*blobs, absent]
    status, headers, body = _post(serve(tmp_path).port, "/content/pack", "\n".join(asked).encode())
    assert status == 200
    assert headers["Content-Type"] == PACK_MEDIA_TYPE
    assert int(headers["Content-Length"]) == len(body)
    records = _records(body)
    assert [sha for sha, _ in records] == asked
    assert dict(records)[absent] is None
    for sha, data in records[:-1]:
        assert data == blobs[sha] and hashlib.sha256(data).hexdigest() == sha


def test_pack_refuses_lines_that_are_not_hashes_and_reads_no_file(
    tmp_path: Path, serve: Serve
) -> None:
    store = tmp_path / "store"
    good = next(iter(_store(store, [100])))
    (tmp_path / "secret").write_text("credential")
    port = serve(store).port
    for bad in ("../../secret", good.upper(), good[:63], good + "0", "%2e%2e/secret", "", " "):
        status, headers, body = _post(port, "/content/pack", f"{good}\n{bad}\n".encode())
        if not bad.strip():  # blank lines are skipped: only the good hash is asked for
            assert status == 200 and _records(body) == [(good, blob_path(store, good).read_bytes())]
            continue
        assert status == 400, bad
        error = json.loads(body)["error"]
        assert "line 2" in error["message"] and "SHA-256" in error["hint"], error
        assert b"credential" not in body


def test_pack_of_too_many_hashes_is_refused_before_reading_the_store(
    tmp_path: Path, serve: Serve
) -> None:
    port = serve(tmp_path).port
    hashes = [f"{i:064x}" for i in range(MAX_BLOBS + 1)]
    status, _, body = _post(port, "/content/pack", "\n".join(hashes).encode())
    assert status == 413
    assert f"at most {MAX_BLOBS}" in json.loads(body)["error"]["message"]
    huge = b"0" * (MAX_BLOBS * 66 + 1)  # announced too large: refused without reading it all
    status, _, body = _post(port, "/content/pack", huge)
    assert status == 413
    status, _, body = _post(port, "/content/pack", b"")
    assert status == 400 and "no blob" in json.loads(body)["error"]["message"]


def test_stranger_cannot_pack_from_a_mount_that_needs_credentials(
    tmp_path: Path, serve: Serve
) -> None:
    async def only_the_dp(request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer qmd_good"

    library = tmp_path / "library"
    sha = next(iter(_store(library, [500])))
    port = serve(
        StoreMount("", tmp_path / "open"), StoreMount("/library", library, only_the_dp)
    ).port
    for headers in ({}, {"Authorization": "Bearer qmd_wrong"}):
        status, answer, body = _post(port, "/library/content/pack", sha.encode(), headers)
        assert status == 401 and answer["WWW-Authenticate"] == "Bearer"
        assert sha.encode() not in body
    status, _, body = _post(
        port, "/library/content/pack", sha.encode(), {"Authorization": "Bearer qmd_good"}
    )
    assert status == 200 and _records(body)[0][0] == sha
    status, _, body = _post(port, "/content/pack", sha.encode())  # the open DP store lacks it
    assert status == 200 and _records(body) == [(sha, None)]


def test_fetch_pack_stores_verified_blobs_and_reports_missing(tmp_path: Path, serve: Serve) -> None:
    blobs = _store(tmp_path / "dp", [1, 300, 70_000])
    absent = "cd" * 32
    wanted = {sha: len(data) for sha, data in blobs.items()} | {absent: 10}
    server = serve(tmp_path / "dp")
    fetcher = BlobFetcher()
    try:
        for durable in (False, True):
            dest = tmp_path / f"cache-{durable}"

            def place(sha: str, dest: Path = dest) -> Path:
                return blob_path(dest, sha)

            result = fetch_pack(fetcher, server.url, wanted, place, durable)
            assert result.failure is None and result.missing == [absent]
            assert result.stored == {sha: len(data) for sha, data in blobs.items()}
            for sha, data in blobs.items():
                assert blob_path(dest, sha).read_bytes() == data
            leftovers = [p for p in dest.rglob("*") if p.is_file() and p.name not in blobs]
            assert leftovers == []
    finally:
        fetcher.close()


def test_fetch_pack_keeps_good_blobs_before_a_bad_one_and_stores_no_bad_byte(
    tmp_path: Path, serve: Serve
) -> None:
    store = tmp_path / "dp"
    good = _store(store, [200])
    bad = hashlib.sha256(b"published").hexdigest()
    put_raw_blob(store, b"tampered", name=bad)
    later = _store(store, [300])
    wanted = {next(iter(good)): 200, bad: len(b"tampered"), next(iter(later)): 300}
    fetcher = BlobFetcher()
    try:
        result = fetch_pack(
            fetcher, serve(store).url, wanted, lambda sha: blob_path(tmp_path / "c", sha), False
        )
    finally:
        fetcher.close()
    assert isinstance(result.failure, HashMismatch)
    # blobs are written on several threads: one after the bad one may be in already (it
    # was verified like any other); the bad one never is
    assert next(iter(good)) in result.stored and bad not in result.stored
    assert set(result.stored) <= {next(iter(good)), next(iter(later))}
    on_disk = {p.name for p in (tmp_path / "c").rglob("*") if p.is_file()}
    assert on_disk == set(result.stored)


def test_fetch_pack_refuses_a_size_other_than_the_manifest_s(tmp_path: Path, serve: Serve) -> None:
    blobs = _store(tmp_path / "dp", [400])
    sha = next(iter(blobs))
    fetcher = BlobFetcher()
    try:
        result = fetch_pack(
            fetcher, serve(tmp_path / "dp").url, {sha: 399}, lambda s: tmp_path / s, False
        )
    finally:
        fetcher.close()
    assert result.failure is not None and "399" in result.failure.message
    assert result.stored == {} and not (tmp_path / sha).exists()


def test_a_store_without_the_pack_route_is_pack_unsupported(tmp_path: Path) -> None:
    """A stock static server answers a POST 405 (nginx) or 404: the caller falls back."""
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fetcher = BlobFetcher()
    try:
        result = fetch_pack(
            fetcher, f"http://127.0.0.1:{port}", {"ab" * 32: 1}, lambda s: tmp_path / s, False
        )
    finally:
        fetcher.close()
        server.shutdown()
    assert isinstance(result.failure, PackUnsupported)
    assert os.listdir(tmp_path) == []


def test_batches_bound_count_and_bytes_and_leave_large_blobs_to_get() -> None:
    blobs = {f"{i:064x}": 1000 for i in range(MAX_BLOBS + 5)} | {"f" * 64: 2 * 1024 * 1024}
    packs = list(batches(blobs))
    assert [len(p) for p in packs] == [MAX_BLOBS, 5]
    assert all("f" * 64 not in p for p in packs)
    big = {f"{i:064x}": 1000 * 1000 - 1 for i in range(200)}
    assert all(sum(p.values()) <= 64 * 1024 * 1024 for p in batches(big))
