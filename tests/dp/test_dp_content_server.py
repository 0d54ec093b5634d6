"""The data plane serves exactly the store shapes, with Range, HEAD and immutable caching."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from aiohttp import web

from quartermaster.core.store_layout import blob_relpath
from quartermaster.dp.content_server import IMMUTABLE, StoreMount
from tests.dp.dp_fixtures import Serve, put_raw_blob, request

DATA = bytes(range(256)) * 40  # 10240 bytes


def _store_with_blob(root: Path) -> str:
    return put_raw_blob(root, DATA)


def test_get_serves_blob_bytes_with_immutable_cache_header(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    server = serve(tmp_path)
    status, headers, body = request(server.port, "/" + blob_relpath(sha))
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == sha
    assert headers["Cache-Control"] == IMMUTABLE
    assert headers["Accept-Ranges"] == "bytes"
    assert "Content-Encoding" not in headers


def test_head_gives_length_without_body(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    status, headers, body = request(serve(tmp_path).port, "/" + blob_relpath(sha), "HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(DATA)), b"")


def test_range_request_answers_206_with_content_range(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    port, path = serve(tmp_path).port, "/" + blob_relpath(sha)
    status, headers, body = request(port, path, headers={"Range": "bytes=100-199"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
    assert body == DATA[100:200]
    status, headers, body = request(port, path, headers={"Range": "bytes=10000-"})
    assert (status, headers["Content-Range"], body) == (
        206,
        f"bytes 10000-10239/{len(DATA)}",
        DATA[10000:],
    )


def test_range_past_the_end_answers_416(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    status, headers, _ = request(
        serve(tmp_path).port, "/" + blob_relpath(sha), headers={"Range": f"bytes={len(DATA)}-"}
    )
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_traversal_and_foreign_paths_are_404(tmp_path: Path, serve: Serve) -> None:
    store = tmp_path / "store"
    sha = _store_with_blob(store)
    (tmp_path / "secret").write_text("credential")
    (store / "dp.json").write_text("{}")
    port = serve(store).port
    for path in (
        "/content/sha256/../../secret",
        "/content/sha256/%2e%2e/%2e%2e/secret",
        "/../secret",
        "/dp.json",
        f"/content/sha256/{sha[:2]}/../../../secret",
        f"/content/sha256/{sha[:2]}/{sha.upper()}",
        f"/content/sha256/00/{sha}",
        f"/content/sha256/{sha[:2]}/{sha}/",
        f"/content/sha256/{sha[:2]}",
        "/manifests/../dp.json",
        "/",
    ):
        status, _, body = request(port, path)
        assert status == 404, path
        assert b"credential" not in body


def test_part_and_temp_files_are_never_served(tmp_path: Path, serve: Serve) -> None:
    sha = hashlib.sha256(b"whole").hexdigest()
    shard = tmp_path / "content" / "sha256" / sha[:2]
    shard.mkdir(parents=True)
    (shard / f"{sha}.part").write_bytes(b"who")
    (shard / ".tmp-abc.part").write_bytes(b"who")
    port = serve(tmp_path).port
    for name in (f"{sha}.part", ".tmp-abc.part", sha):
        status, headers, _ = request(port, f"/content/sha256/{sha[:2]}/{name}")
        assert status == 404, name
        assert headers.get("Cache-Control") != IMMUTABLE


def test_compressed_sibling_is_not_substituted(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    (tmp_path / f"{blob_relpath(sha)}.gz").write_bytes(b"not the blob")
    status, headers, body = request(
        serve(tmp_path).port, "/" + blob_relpath(sha), headers={"Accept-Encoding": "gzip, br"}
    )
    assert (status, body) == (200, DATA)
    assert "Content-Encoding" not in headers


def test_manifest_is_served_as_json(tmp_path: Path, serve: Serve) -> None:
    package_hash = "ab" * 32
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / f"{package_hash}.json").write_bytes(b'{"signed": {}}')
    port = serve(tmp_path).port
    status, headers, body = request(port, f"/manifests/{package_hash}.json")
    assert (status, body) == (200, b'{"signed": {}}')
    assert headers["Content-Type"].startswith("application/json")
    assert request(port, f"/manifests/{package_hash}")[0] == 404


def test_prefixes_serve_separate_stores_and_auth_guards_one(tmp_path: Path, serve: Serve) -> None:
    dp_sha = put_raw_blob(tmp_path / "dp", b"dp blob")
    lib_sha = put_raw_blob(tmp_path / "library", b"library blob")

    async def dp_credential(req: web.Request) -> bool:
        return req.headers.get("Authorization") == "Bearer qmd_good"

    server = serve(
        StoreMount("", tmp_path / "dp"), StoreMount("/library", tmp_path / "library", dp_credential)
    )
    assert request(server.port, "/" + blob_relpath(dp_sha))[2] == b"dp blob"
    assert (
        request(
            server.port,
            "/library/" + blob_relpath(dp_sha),
            headers={"Authorization": "Bearer qmd_good"},
        )[0]
        == 404
    )
    status, headers, body = request(server.port, "/library/" + blob_relpath(lib_sha))
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert b'"unauthorized"' in body
    assert (
        request(
            server.port,
            "/library/" + blob_relpath(lib_sha),
            headers={"Authorization": "Bearer qmd_bad"},
        )[0]
        == 401
    )
    assert (
        request(
            server.port,
            "/library/" + blob_relpath(lib_sha),
            headers={"Authorization": "Bearer qmd_good"},
        )[2]
        == b"library blob"
    )


def test_healthz_answers_ok(tmp_path: Path, serve: Serve) -> None:
    status, _, body = request(serve(tmp_path).port, "/healthz")
    assert status == 200
    assert b'"ok"' in body


def test_writes_are_refused(tmp_path: Path, serve: Serve) -> None:
    sha = _store_with_blob(tmp_path)
    port = serve(tmp_path).port
    for method in ("PUT", "DELETE", "POST"):
        assert request(port, "/" + blob_relpath(sha), method)[0] == 405
    assert (tmp_path / blob_relpath(sha)).read_bytes() == DATA


def test_errors_have_the_protocols_one_shape(tmp_path: Path, serve: Serve) -> None:
    """A missing blob or manifest, and a write, answer JSON {"error": {code, message, hint}}
    (docs/protocol.md), never an empty body."""
    sha = _store_with_blob(tmp_path)
    port = serve(tmp_path).port
    missing = "/" + blob_relpath("ab" * 32)
    answers = [
        (request(port, missing), 404, "not_found"),
        (request(port, f"/manifests/{'cd' * 32}.json"), 404, "not_found"),
        (request(port, "/" + blob_relpath(sha), "POST"), 405, "method_not_allowed"),
    ]
    for (status, headers, body), wanted_status, code in answers:
        assert status == wanted_status
        assert headers["Content-Type"].startswith("application/json"), headers
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message", "hint", "request_id"}
        assert error["request_id"] == headers["X-Request-ID"]  # for the DP's log
        assert error["code"] == code and error["message"] and error["hint"], error
    assert "GET and HEAD" in json.loads(answers[2][0][2])["error"]["hint"]
    assert "GET" in answers[2][0][1]["Allow"]
