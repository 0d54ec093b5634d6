"""The site's content library in an S3 bucket (a real SeaweedFS): snapshots write there, the
embedded DP fills from the site's /library (streamed from the bucket), a client installs, a
prune deletes the old version's objects, a backup records the bucket; the credentials stay
in the site's environment; a bad URL or missing credentials is a clear error at init."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quartermaster.core import logging_setup
from quartermaster.core.errors import InvalidInput, QMError
from quartermaster.core.store_layout import blob_relpath, manifest_relpath
from quartermaster.site.setup import init_site
from tests.dp.seaweedfs import BUCKET, SECRET_KEY, WRITER_ENV, SeaweedS3, running_seaweedfs
from tests.e2e.processes import Daemon, SiteServer, free_port_pair, run_qm
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    register_client,
    run_client,
    wait_installed,
)
from tests.e2e.site_templates import with_migrated_sqlite

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SESSION_TOKEN": "",
    "AWS_PROFILE": "",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedS3]:
    with running_seaweedfs(tmp_path / "seaweedfs") as s3:
        yield s3


def _objects(s3: SeaweedS3, prefix: str) -> dict[str, int]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}


def _bucket_site(base: Path, s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SiteServer:
    for name, value in WRITER_ENV.items():
        monkeypatch.setenv(name, value)
    home = base / "site"
    port = free_port_pair()
    init_site(
        with_migrated_sqlite(home),
        "QM1",
        "bucket site",
        listen=f"127.0.0.1:{port}",
        library_url=s3.store_url("library"),
    )
    daemon = Daemon(["site", "serve", "--home", str(home)], base / "site-serve.log", env=WRITER_ENV)
    server = SiteServer(home, port, daemon)
    server.start()
    return server


def _version(source: Path, number: int) -> str:
    (source / "payload.txt").write_text(f"version {number}\n")
    (source / "big.bin").write_bytes(os.urandom(1 << 20))
    return hashlib.sha256((source / "big.bin").read_bytes()).hexdigest()


@pytest.mark.e2e
def test_a_bucket_library_publishes_fills_the_dp_installs_prunes_and_keeps_its_secret(
    seaweed: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _bucket_site(tmp_path, seaweed, monkeypatch)
    try:
        target = tmp_path / "installed" / "payload.txt"
        source = make_source(tmp_path / "src", target, "version 1\n")
        first_big = _version(source, 1)
        package_id = create_package(site, source)  # waits until the embedded DP holds it
        shown = site.api("GET", f"/api/v1/packages/{package_id}")
        first_hash = shown["versions"][0]["package_hash"]
        held = _objects(seaweed, "library/")
        assert f"library/{blob_relpath(first_big)}" in held
        assert held[f"library/{manifest_relpath(first_hash)}"] > 0
        assert not (site.home / "library" / "content").exists()  # nothing kept locally
        assert not list((site.home / "library").rglob("snap-*"))  # no temp left behind
        dp_store = site.home / "dp" / "store"
        assert (dp_store / blob_relpath(first_big)).is_file()  # filled from the bucket

        # The library port: a stranger gets nothing; the embedded DP's credential may read
        # with a Range (streamed from the bucket).
        url = f"{site.content_url}/library/{blob_relpath(first_big)}"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer qmd_forged"}).status_code == 401
        credential = json.loads((site.home / "dp" / "dp.json").read_text())["credential"]
        whole = httpx.get(url, headers={"Authorization": f"Bearer {credential}"})
        assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == first_big
        assert whole.headers["ETag"] == f'"{first_big}"'
        part = httpx.get(
            url, headers={"Authorization": f"Bearer {credential}", "Range": "bytes=1000-1999"}
        )
        assert part.status_code == 206 and part.content == whole.content[1000:2000]
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{1 << 20}"
        missing = f"{site.content_url}/library/{blob_relpath('ab' + '0' * 62)}"
        gone = httpx.get(missing, headers={"Authorization": f"Bearer {credential}"})
        assert gone.status_code == 404

        client = tmp_path / "client"
        deploy_to(site, package_id, [register_client(site, client)], "Lab")
        run_client(client)
        assert target.read_text() == "version 1\n"

        # A second version, then a prune to one version with no grace: the first version's
        # objects leave the bucket, the second's stay.
        second_big = _version(source, 2)
        site.qm("package", "update", package_id)
        wait_installed(site, package_id, version=2)
        site.qm("site", "settings", "--content-grace", "0")
        pruned = site.qm("package", "prune", package_id, "--keep", "1", "--json").json()
        assert (pruned["kept"], pruned["pruned"]) == ([2], [1])
        assert pruned["library"]["blobs"] == 2 and pruned["library"]["manifests"] == 1
        held = _objects(seaweed, "library/")
        assert f"library/{blob_relpath(first_big)}" not in held
        assert f"library/{manifest_relpath(first_hash)}" not in held
        assert f"library/{blob_relpath(second_big)}" in held
        jobs = site.qm("job", "list", "--json").json()["jobs"]
        assert jobs[0]["kind"] == "gc" and jobs[0]["state"] == "succeeded"

        # A backup records the bucket and its blob manifest; it copies no blob.
        backup_to = tmp_path / "bk"
        run_qm("site", "backup", "--home", str(site.home), "--to", str(backup_to), env=WRITER_ENV)
        described = json.loads(next((backup_to / "backups").glob("*/backup.json")).read_text())
        config = json.loads((site.home / "config.json").read_text())
        assert described["library"] == config["library_url"]
        assert config["library_url"] == seaweed.store_url("library") + "&region=us-east-1"
        assert second_big in described["blobs"] and not list(backup_to.rglob(second_big))
        # A restore points the new home at the same bucket, after checking it holds them all.
        restored = tmp_path / "restored"
        args = ["site", "restore", "--from", str(backup_to), "--home", str(restored), "--json"]
        result = run_qm(*args, env=WRITER_ENV).json()
        assert result["blobs_verified"] == len(described["blobs"]) >= 2
        saved = json.loads((restored / "config.json").read_text())
        assert saved["library_url"] == config["library_url"]
        assert not (restored / "library" / "content").exists()

        # Nowhere a stranger or a low-privilege account can look holds the secret key.
        config_file = site.home / "config.json"
        assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(site.home.stat().st_mode) == 0o700
        # A local user of another account cannot read the site process's environment.
        assert site.daemon.proc is not None
        environ = Path(f"/proc/{site.daemon.proc.pid}/environ")
        assert SECRET_KEY.encode() in environ.read_bytes()  # the secret is there, for its user
        stranger = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        peek = subprocess.run([*stranger, "cat", str(environ)], capture_output=True)
        assert peek.returncode != 0 and SECRET_KEY.encode() not in peek.stdout
        for path in site.home.rglob("*"):
            if path.is_file():
                assert SECRET_KEY.encode() not in path.read_bytes(), path
        for path in [*(tmp_path / "bk").rglob("*"), *(tmp_path / "restored").rglob("*")]:
            if path.is_file():
                assert SECRET_KEY.encode() not in path.read_bytes(), path
        assert SECRET_KEY not in (tmp_path / "site-serve.log").read_text()
        for route in ("/api/v1/settings", "/api/v1/site", "/api/v1/jobs", "/readyz", "/metrics"):
            answer = httpx.get(
                f"{site.url}{route}", headers={"Authorization": f"Bearer {site.token}"}
            )
            assert (
                SECRET_KEY not in answer.text and WRITER_ENV["AWS_ACCESS_KEY_ID"] not in answer.text
            )
        assert SECRET_KEY not in httpx.get(f"{site.content_url}/metrics").text
        assert site.api("GET", "/api/v1/site")["library"] == config["library_url"]
        status = site.qm("site", "status").stdout
        assert f"content library: {config['library_url']}" in status
    finally:
        site.stop()


@pytest.mark.e2e
def test_refused_or_missing_credentials_are_a_clear_error_of_qm_site_init(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    wrong = {**WRITER_ENV, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    refused = run_qm(
        "site", "init", "--home", str(tmp_path / "site"), "--site-code", "QM1",
        "--library", seaweed.store_url("library"), env=wrong, check=False,
    )  # fmt: skip
    assert refused.code != 0 and "Traceback" not in refused.stderr
    assert "could not check the content library's bucket" in refused.stderr
    assert "AWS_SECRET_ACCESS_KEY" in refused.stderr and "not-the-secret" not in refused.stderr
    assert not (tmp_path / "site").exists()
    no_bucket = run_qm(
        "site", "init", "--home", str(tmp_path / "site"), "--site-code", "QM1",
        "--library", f"s3://no-such-bucket/x?endpoint={seaweed.endpoint}",
        env=WRITER_ENV, check=False,
    )  # fmt: skip
    assert no_bucket.code != 0 and "Traceback" not in no_bucket.stderr
    assert "create the bucket first" in no_bucket.stderr
    quiet = {name: value for name, value in NO_CREDENTIALS.items() if value}
    cli = run_qm(
        "site", "init", "--home", str(tmp_path / "site"), "--site-code", "QM1",
        "--library", seaweed.store_url("library"),
        env={**quiet, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
        check=False,
    )  # fmt: skip
    assert cli.code != 0 and "Traceback" not in cli.stderr
    assert "no S3 credentials" in cli.stderr and not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("s3://bucket-only", "needs a bucket and ?endpoint="),
        ("s3://b/p?endpoint=ftp://x", "needs a bucket and ?endpoint="),
        ("https://not-s3/x", "is not an s3:// URL"),
        ("s3://b/p?endpoint=http://127.0.0.1:1&secret=abc", "takes only endpoint= and region="),
    ],
)
def test_a_bad_library_url_is_refused_at_init_before_a_home_exists(
    tmp_path: Path, url: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        init_site(tmp_path / "site", "QM1", "x", library_url=url)
    assert words in refused.value.message
    assert not (tmp_path / "site").exists()


def test_missing_credentials_are_a_clear_error_at_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in NO_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name)
    with pytest.raises(QMError) as refused:
        init_site(tmp_path / "site", "QM1", "x", library_url="s3://b/p?endpoint=http://127.0.0.1:1")
    assert "no S3 credentials" in refused.value.message
    assert "AWS_ACCESS_KEY_ID" in refused.value.hint
    assert not (tmp_path / "site").exists()


def test_debug_logging_leaves_out_the_s3_clients_request_headers() -> None:
    """At --log-level debug botocore would log each request's headers (the access key ID and
    signatures): its loggers stay at warnings whatever the level."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        logging_setup.configure(level="debug")
        assert logging.getLogger("quartermaster.site").isEnabledFor(logging.DEBUG)
        for name in ("botocore.endpoint", "botocore.auth", "boto3.resources", "urllib3"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
