"""A DP killed with SIGKILL mid-transfer resumes with Range and never exposes a partial blob."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.core.store_layout import blob_relpath
from quartermaster.dp.store import DPStore
from tests.dp.dp_fixtures import Serve, put_raw_blob, request

SIZE = 48 * 1024 * 1024
STOP_AFTER = 12 * 1024 * 1024

# The child pulls the blob and, once STOP_AFTER bytes are on disk, says so and waits to be
# killed: the kill lands mid-transfer without depending on timing.
CHILD = """
import sys
from pathlib import Path
from quartermaster.core.blob_transfer import BlobFetcher
from quartermaster.dp.store import DPStore

root, source, sha, size, stop_after = sys.argv[1:6]
received = 0

def progress(n):
    global received
    received += n
    if received >= int(stop_after):
        print("mid-transfer", flush=True)
        sys.stdin.read()

DPStore(Path(root)).fetch_blob(BlobFetcher(), [source], sha, int(size), progress)
print("finished", flush=True)
"""


def _kill_mid_transfer(store: DPStore, source: str, sha: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root), source, sha, str(SIZE), str(STOP_AFTER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "mid-transfer"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def _assert_every_stored_blob_verifies(store: DPStore) -> None:
    files = [p for p in (store.root / "content").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_killed_fetch_resumes_from_the_part_file(tmp_path: Path, serve: Serve) -> None:
    data = os.urandom(SIZE)
    sha = put_raw_blob(tmp_path / "library", data)
    library = serve(tmp_path / "library")
    store = DPStore(tmp_path / "dp")
    dp_server = serve(store.root)

    _kill_mid_transfer(store, library.url, sha)

    part = store.blob_path(sha).with_name(f"{sha}.part")
    offset = part.stat().st_size
    assert STOP_AFTER <= offset < SIZE
    assert part.read_bytes() == data[:offset]
    assert not store.has_blob(sha)
    assert request(dp_server.port, "/" + blob_relpath(sha), "HEAD")[0] == 404
    assert request(dp_server.port, f"/content/sha256/{sha[:2]}/{sha}.part", "HEAD")[0] == 404

    outcome = DPStore(store.root).fetch_blob(BlobFetcher(), [library.url], sha, SIZE)

    assert outcome.resumed_from == offset
    assert outcome.bytes_transferred == SIZE - offset
    assert [h.range for h in library.blob_hits(sha)] == ["", f"bytes={offset}-"]
    assert [h.status for h in library.blob_hits(sha)] == [200, 206]
    assert not part.exists()
    _assert_every_stored_blob_verifies(store)
    status, _, body = request(dp_server.port, "/" + blob_relpath(sha))
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha
