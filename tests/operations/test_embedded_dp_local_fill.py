"""The site's own DP fills from the library folder on its disk, not over HTTP, and still
verifies every blob: a bad library blob is never installed, and a DP blob damaged later is
repaired from the library without touching the library's copy."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from quartermaster.core.store_layout import blob_path
from tests.e2e.processes import SiteServer, wait_until
from tests.operations.servers import site_with_options

pytestmark = pytest.mark.e2e


def _corrupt_in_place(path: Path) -> None:
    """Other bytes under the same name, written into the file itself (same inode)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(site: SiteServer, package_id: str) -> tuple[str, str]:
    shown = site.api("GET", f"/api/v1/packages/{package_id}")["distribution"]
    (mine,) = [d for d in shown if d["dp"] == "site"]
    return mine["state"], str(mine.get("reason") or "")


def test_the_embedded_dp_copies_from_the_library_verified_and_heals(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for n in range(40):
        (source / f"f{n:02d}.txt").write_bytes(os.urandom(500 + 37 * n))
    site = site_with_options(tmp_path)
    try:
        created = site.qm("package", "create", "--name", "Tool", "--source", str(source))
        package_id = created.stdout.strip()
        assert _state(site, package_id)[0] == "installed"
        log = site.home / "dp" / "distmgr.log"
        assert "from the local library" in log.read_text()
        assert "40 of 40 blobs" in log.read_text()

        data = (source / "f07.txt").read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        library_copy = blob_path(site.home / "library", sha)
        held = blob_path(site.home / "dp" / "store", sha)
        assert held.stat().st_ino != library_copy.stat().st_ino

        # A DP blob damaged later: validation finds it, the library's copy heals it.
        _corrupt_in_place(held)
        assert _sha(library_copy) == sha
        site.qm("dp", "validate", "site")
        assert held.read_bytes() == data and library_copy.read_bytes() == data
        assert "validation found 1 bad blobs" in log.read_text()
        assert "1 of 1 blobs" in log.read_text()
        assert _state(site, package_id)[0] == "installed"

        # A bad library blob (and a damaged DP copy): never installed, the reason reported.
        _corrupt_in_place(library_copy)
        _corrupt_in_place(held)
        site.qm("dp", "validate", "site", "--no-wait")
        state, reason = wait_until(
            lambda: (s := _state(site, package_id))[0] == "failed" and s,
            "the embedded DP reporting the bad blob",
        )
        assert sha in reason
        assert not held.exists()
        assert f"blob {sha} in the local library" in log.read_text()
        assert "not taken: its bytes hash to" in log.read_text()
        assert not [p for p in held.parent.iterdir() if p.name.startswith(".tmp-")]
    finally:
        site.stop()
