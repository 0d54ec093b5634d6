"""A DP whose store is an S3 bucket (a real SeaweedFS): clients download from the bucket's
endpoint with plain GET and Range and no credentials; a corrupted object is found, uploaded
again, and the DP is offered again only after validation."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quartermaster.core.store_layout import blob_relpath
from tests.dp.seaweedfs import BUCKET, WRITER_ENV, SeaweedS3, running_seaweedfs
from tests.e2e.processes import (
    Daemon,
    DPServer,
    SiteServer,
    free_port,
    run_qm,
    start_site,
    wait_until,
)
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    make_source,
    message_ids,
    register_client,
    run_client,
    wait_dp_state,
    wait_installed,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedS3]:
    with running_seaweedfs(tmp_path / "seaweedfs") as s3:
        yield s3


def start_bucket_dp(site: SiteServer, s3: SeaweedS3, base: Path, name: str) -> DPServer:
    """`qm dp add --store` and `qm dp serve --store`, with the writer's credentials only in
    the DP's environment."""
    store = s3.store_url(name)
    token = site.qm("dp", "add", "--name", name, "--store", store, "--fallback").stdout.strip()
    port = free_port()
    serve = ["dp", "serve", "--home", str(base / name), "--site", site.url, "--token", token]
    serve += ["--store", store, "--listen", f"127.0.0.1:{port}", "--poll-interval", "1"]
    dp = DPServer(name, base / name, port, Daemon(serve, base / f"{name}.log", env=WRITER_ENV))
    dp.start()
    return dp


def test_a_bucket_dp_serves_a_client_and_repairs_a_corrupted_object(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    site = start_site(tmp_path)
    dp: DPServer | None = None
    try:
        dp = start_bucket_dp(site, seaweed, tmp_path, "cloud")
        target = tmp_path / "installed" / "payload.txt"
        source = make_source(tmp_path / "src", target, "from the bucket\n")
        (source / "big.bin").write_bytes(os.urandom(3 << 20))
        big = hashlib.sha256((source / "big.bin").read_bytes()).hexdigest()
        package_id = create_package(site, source)
        wait_installed(site, package_id, "cloud")
        dps = site.qm("dp", "list", "--json").json()["dps"]
        assert {d["name"]: d["url"] for d in dps}["cloud"] == seaweed.public_url("cloud")
        site.qm("package", "remove-dp", package_id, "--dp", "site")  # the bucket only

        # Anyone may read the bucket with plain HTTP, ranges included; nobody may write.
        url = f"{seaweed.public_url('cloud')}/{blob_relpath(big)}"
        whole = httpx.get(url)
        assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == big
        tail = httpx.get(url, headers={"Range": "bytes=1048576-"})
        assert tail.status_code == 206 and tail.content == whole.content[1 << 20 :]
        assert httpx.put(url, content=b"forged").status_code in (401, 403)
        assert (dp.home / "store").is_dir() and not list((dp.home / "store").rglob("*.bin"))

        client = tmp_path / "client"
        deploy_to(site, package_id, [register_client(site, client)], "Lab")
        run_client(client)  # the client has no S3 credentials: GET and Range only
        assert target.read_text() == "from the bucket\n"
        assert seaweed.public_url("cloud") in (client / "logs" / "cas.log").read_text()

        # Someone corrupts an object in the bucket. A client that downloads it reports the
        # mismatch; the site takes the bucket out of service (2360) until the DP has read
        # every object back, deleted the bad one and uploaded it again.
        rotten = bytearray((source / "big.bin").read_bytes())
        rotten[12345] ^= 0xFF  # one flipped byte: same size, other content
        seaweed.client().put_object(Bucket=BUCKET, Key=f"cloud/{blob_relpath(big)}", Body=rotten)
        second = tmp_path / "second-client"
        second_id = register_client(site, second)
        site.qm("collection", "add", "Lab", second_id)
        run_client(second)
        assert 10075 in message_ids(site, client=second_id)
        assert 2360 in message_ids(site)
        log = dp.home / "distmgr.log"
        wait_until(lambda: "validation found 1 bad blobs" in log.read_text(), "validation")
        wait_dp_state(site, package_id, "cloud", state="installed")
        assert hashlib.sha256(httpx.get(url).content).hexdigest() == big
        assert f"blob {big} failed validation: removed, to be fetched again" in log.read_text()
        (tmp_path / "installed" / "payload.txt").unlink()
        run_client(second)
        assert target.read_text() == "from the bucket\n"
        assert message_ids(site, client=second_id)[-1] == 10008
    finally:
        if dp is not None:
            dp.stop()
        site.stop()


def test_a_bucket_store_url_is_checked_before_anything_is_registered() -> None:
    env = {"QM_SITE": "http://127.0.0.1:1", "QM_TOKEN": "qma_unused"}
    for store, words in [
        ("s3://bucket-only", "needs a bucket and ?endpoint="),
        ("https://not-s3/x", "is not an s3:// URL"),
        ("s3://b/p?endpoint=ftp://x", "needs a bucket and ?endpoint="),
    ]:
        result = run_qm("dp", "add", "--name", "cloud", "--store", store, env=env, check=False)
        assert result.code != 0 and words in result.stderr, result.stderr
    neither = run_qm("dp", "add", "--name", "cloud", env=env, check=False)
    assert neither.code != 0 and "--url" in neither.stderr
