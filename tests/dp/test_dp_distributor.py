"""A DP takes only signed manifests of the named version and pulls each blob once, verified."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from aiohttp import web

from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import IntegrityError, SignatureError
from quartermaster.core.manifest import FileEntry, Manifest
from quartermaster.core.signing import SigningKey
from quartermaster.dp import distributor as distributor_module
from quartermaster.dp.content_server import StoreMount
from quartermaster.dp.distributor import DistributionFailed, Distributor
from quartermaster.dp.store import CancelCheck, Cancelled, DPStore
from tests.dp.dp_fixtures import Serve, make_package, put_raw_blob, random_bytes


def _distributor(
    tmp_path: Path, key: SigningKey, credential: str = "", cancel: CancelCheck | None = None
) -> Distributor:
    return Distributor(
        DPStore(tmp_path / "dp"),
        {key.keyid: key.public},
        ComponentLog(tmp_path, "distmgr"),
        credential,
        cancel,
    )


def test_signed_manifest_is_verified_and_stored(tmp_path: Path, site_key: SigningKey) -> None:
    package = make_package(site_key, {"setup.sh": b"echo hi"})
    distributor = _distributor(tmp_path, site_key)
    manifest = distributor.accept_manifest(package.package_hash, package.envelope)
    assert manifest == package.manifest
    assert distributor.store.manifest_path(package.package_hash).read_bytes() == package.envelope


def test_manifest_signed_by_an_unknown_key_is_refused(tmp_path: Path, site_key: SigningKey) -> None:
    package = make_package(SigningKey.generate(), {"setup.sh": b"echo hi"})
    distributor = _distributor(tmp_path, site_key)
    with pytest.raises(SignatureError):
        distributor.accept_manifest(package.package_hash, package.envelope)
    assert distributor.store.held_versions() == []


def test_manifest_of_another_version_is_refused(tmp_path: Path, site_key: SigningKey) -> None:
    v1 = make_package(site_key, {"app": b"v1"}, 1)
    v2 = make_package(site_key, {"app": b"v2"}, 2)
    distributor = _distributor(tmp_path, site_key)
    with pytest.raises(IntegrityError, match="mix-and-match"):
        distributor.accept_manifest(v2.package_hash, v1.envelope)
    altered = json.loads(v1.envelope)
    altered["signed"]["files"][0]["size"] += 1
    with pytest.raises(SignatureError):
        distributor.accept_manifest(v1.package_hash, json.dumps(altered).encode())
    assert distributor.store.held_versions() == []


def test_pull_transfers_each_shared_blob_once(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    shared = random_bytes(1_000_000)
    v1 = make_package(site_key, {"core.bin": shared, "a": b"one"}, 1, tmp_path / "library")
    v2 = make_package(site_key, {"core.bin": shared, "b": b"two!"}, 2, tmp_path / "library")
    library = serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key)
    first = distributor.pull(v1.manifest, [library.url])
    asked_before = len(library.hits)
    second = distributor.pull(v2.manifest, [library.url])
    assert (first.bytes_done, first.bytes_total) == (1_000_003, 1_000_003)
    assert first.bytes_transferred == 1_000_003
    assert (second.bytes_transferred, second.bytes_done, second.blobs_fetched) == (4, 1_000_004, 1)
    new_blob = hashlib.sha256(b"two!").hexdigest()
    assert [h.path.rsplit("/", 1)[1] for h in library.hits[asked_before:]] == [new_blob]


def test_pull_takes_small_blobs_in_packs_and_the_rest_by_get(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    # up to 4 MiB (the chunking threshold) in packs; larger by GET
    files = {f"f{i}": random_bytes(100 + i) for i in range(50)}
    files |= {"mid": random_bytes(2 << 20), "big": random_bytes(5 << 20)}
    package = make_package(site_key, files, 1, tmp_path / "library")
    library = serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key)
    pulled = distributor.pull(package.manifest, [library.url])
    assert pulled.blobs_fetched == 52
    assert pulled.bytes_transferred == sum(len(d) for d in files.values())
    assert [(h.method, h.path) for h in library.hits if h.method == "POST"] == [
        ("POST", "/content/pack")
    ]
    big = hashlib.sha256(files["big"]).hexdigest()
    assert [h.path.rsplit("/", 1)[1] for h in library.hits if h.method == "GET"] == [big]
    assert distributor.store.missing_blobs(package.manifest) == {}
    for sha in package.manifest.blobs():
        assert hashlib.sha256(distributor.store.blob_path(sha).read_bytes()).hexdigest() == sha


def test_pull_falls_back_past_a_source_with_bad_bytes(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    data = random_bytes(70_000)
    package = make_package(site_key, {"f": data}, library=tmp_path / "library")
    sha = package.manifest.files[0].sha256
    put_raw_blob(tmp_path / "rotten", b"\0" * len(data), name=sha)
    rotten, library = serve(tmp_path / "rotten"), serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key)
    distributor.pull(package.manifest, [rotten.url, library.url])
    assert distributor.store.blob_path(sha).read_bytes() == data
    assert "source skipped" in (tmp_path / "distmgr.log").read_text()


def test_pull_fails_with_the_reason_when_no_source_serves(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    package = make_package(site_key, {"f": b"data"})
    empty = serve(tmp_path / "empty")
    distributor = _distributor(tmp_path, site_key)
    with pytest.raises(DistributionFailed, match="HTTP 404"):
        distributor.pull(package.manifest, [empty.url])
    with pytest.raises(DistributionFailed, match="0 sources"):
        distributor.pull(package.manifest, [])


def test_credential_is_sent_to_the_library_only(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    package = make_package(site_key, {"f": b"guarded"}, library=tmp_path / "library")

    async def only_dps(request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Bearer qmd_dp2"

    server = serve(StoreMount("/library", tmp_path / "library", only_dps))
    source = server.url + "/library"
    with pytest.raises(DistributionFailed, match="401"):
        _distributor(tmp_path / "anonymous", site_key).pull(package.manifest, [source])
    enrolled = _distributor(tmp_path / "enrolled", site_key, credential="qmd_dp2")
    with pytest.raises(DistributionFailed, match="401"):  # a source, but not the library
        enrolled.pull(package.manifest, [source])
    assert enrolled.pull(package.manifest, [source], library=source).bytes_transferred == 7


def test_stop_mid_transfer_keeps_the_part_and_a_later_pull_resumes(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    data = random_bytes(20 * 1024 * 1024)
    package = make_package(site_key, {"big.iso": data}, library=tmp_path / "library")
    sha = package.manifest.files[0].sha256
    library = serve(tmp_path / "library")
    stop = {"now": False}

    def stop_after_first_chunk(progress: object) -> None:
        stop["now"] = True

    stopping = _distributor(tmp_path, site_key, cancel=lambda: stop["now"])
    with pytest.raises(Cancelled):
        stopping.pull(package.manifest, [library.url], stop_after_first_chunk)
    part = stopping.store.blob_path(sha).with_name(f"{sha}.part")
    offset = part.stat().st_size
    assert 0 < offset < len(data)
    assert not stopping.store.has_blob(sha)

    progress = _distributor(tmp_path, site_key).pull(package.manifest, [library.url])
    assert progress.bytes_transferred == len(data) - offset
    assert progress.bytes_done == len(data)
    assert stopping.store.blob_path(sha).read_bytes() == data


def test_validation_then_pull_repairs_only_the_bad_blob(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    package = make_package(
        site_key, {"a": b"a" * 5000, "b": b"b" * 6000}, library=tmp_path / "library"
    )
    library = serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key)
    distributor.accept_manifest(package.package_hash, package.envelope)
    distributor.pull(package.manifest, [library.url])
    bad_sha = package.manifest.files[1].sha256
    path = distributor.store.blob_path(bad_sha)
    path.write_bytes(b"b" * 5999 + b"x")
    assert distributor.validate([package.package_hash]) == [bad_sha]
    repaired = distributor.pull(package.manifest, [library.url])
    assert (repaired.bytes_transferred, repaired.blobs_fetched) == (6000, 1)
    assert distributor.validate([package.package_hash]) == []


def test_pull_refuses_a_version_larger_than_the_free_disk(
    tmp_path: Path, serve: Serve, site_key: SigningKey
) -> None:
    huge = Manifest("QM1", "QM100002", 1, (FileEntry("disk.img", 2**60, 0o644, "ab" * 32),))
    library = serve(tmp_path / "library")
    with pytest.raises(DistributionFailed, match="free disk space"):
        _distributor(tmp_path, site_key).pull(huge, [library.url])
    assert library.hits == []


def test_many_packs_on_two_streams_bring_every_blob_once(
    tmp_path: Path, serve: Serve, site_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distributor_module, "BATCH_BYTES", 20_000)
    monkeypatch.setattr(distributor_module, "PACK_STREAMS", 2)
    files = {f"f{i}": random_bytes(3000 + i) for i in range(60)}
    package = make_package(site_key, files, 1, tmp_path / "library")
    library = serve(tmp_path / "library")
    distributor = _distributor(tmp_path, site_key)
    pulled = distributor.pull(package.manifest, [library.url])
    posts = [h for h in library.hits if h.method == "POST"]
    assert len(posts) == 10 and not [h for h in library.hits if h.method == "GET"]
    assert (pulled.blobs_fetched, pulled.bytes_transferred) == (60, sum(map(len, files.values())))
    assert distributor.store.missing_blobs(package.manifest) == {}
    log = (tmp_path / "distmgr.log").read_text()
    assert log.count("SHA-256 verified") == 10
