"""A signed manifest whose paths could escape the work folder or collide on a client is
refused before the client downloads or writes anything (10055)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quartermaster.client.site_link import Location
from quartermaster.core.canonical import canonical_json
from quartermaster.core.hashing import sha256_bytes
from tests.client.conftest import SITE_CODE, ClientWorld, deployment_entry, make_package
from tests.client.servers import StoreServer, write_store

EVIL = b"rm -rf /\n"
UNSAFE = {  # paths, and what the refusal says
    "traversal": (["../evil.sh"], "'..' component"),
    "nested traversal": (["a/../../evil.sh"], "'..' component"),
    "absolute": (["/etc/cron.d/evil"], "is absolute"),
    "drive letter": (["C:/Windows/evil.exe"], "is absolute"),
    "backslash": (["a\\..\\evil.sh"], "invalid on Windows"),
    "NUL": (["evil\x00.sh"], "NUL character"),
    "duplicate": (["install.sh", "install.sh"], "the same path twice"),
    "case collision": (["Install.sh", "install.sh"], "collide"),
    "file and folder": (["tools", "tools/x.sh"], "both a file and a folder"),
}


@pytest.mark.parametrize(("paths", "words"), list(UNSAFE.values()), ids=list(UNSAFE))
def test_unsafe_manifest_paths_are_refused_before_anything_is_written(
    tmp_path: Path, paths: list[str], words: str
) -> None:
    world = ClientWorld(tmp_path)
    sha = sha256_bytes(EVIL)
    signed = {
        "format": 1,
        "site_code": SITE_CODE,
        "package_id": "QM100001",
        "source_version": 1,
        "files": [{"path": p, "size": len(EVIL), "mode": 0o755, "sha256": sha} for p in paths],
    }
    package_hash = sha256_bytes(canonical_json(signed))
    world.site.manifests[package_hash] = world.key.envelope(signed)  # signed by the site key
    entry = deployment_entry(make_package(world.key, {"x": b"x"}), command="sh evil.sh")
    entry["package_hash"] = package_hash
    with StoreServer(tmp_path / "dp-store") as dp:
        write_store(dp.root, {sha: EVIL})
        world.site.dp_locations[package_hash] = [Location("dp1", dp.url, "boundary")]
        world.publish(entry)
        world.run()
        assert dp.requests == []

    [refused] = world.site.messages(10055)
    assert refused["insertion_strings"][3] == "1" and words in refused["insertion_strings"][4]
    assert world.site.ids().count(10005) == 0 and 10035 not in world.site.ids()
    assert not (world.home.work / "QM120000").exists() and not (tmp_path / "evil.sh").exists()
    written = [
        p
        for folder in ("cache", "manifests", "work")
        for p in (world.home.root / folder).rglob("*")
        if p.is_file()
    ]
    assert written == []
