"""`qm site backup` and `qm site restore`: a site brought back in a new home serves the same
package hashes under the same signing keys, to a client registered before the backup."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from quartermaster.core.store_layout import blob_relpath
from tests.e2e.processes import Daemon, Result, SiteServer, run_qm
from tests.e2e.scenario import (
    create_package,
    deploy_to,
    deployment_status,
    make_source,
    register_client,
    run_client,
    wait_installed,
)
from tests.e2e.site_templates import migrated_site_home
from tests.required_programs import program

pytestmark = pytest.mark.e2e

PostgresFactory = Callable[[], AbstractContextManager[str]]


def backup(home: Path, to: Path) -> dict[str, int]:
    result: dict[str, int] = run_qm(
        "site", "backup", "--home", str(home), "--to", str(to), "--json"
    ).json()
    return result


def restore(source: Path, home: Path, *options: str, check: bool = True) -> Result:
    return run_qm(
        "site", "restore", "--from", str(source), "--home", str(home), *options, check=check
    )


def versions(site: SiteServer, package_id: str) -> list[str]:
    shown = site.qm("package", "show", package_id, "--json").json()
    return [v["package_hash"] for v in shown["versions"]]


def test_a_restored_site_serves_the_same_package_to_a_client(
    site: SiteServer,
    database_url: str | None,
    postgres_database: PostgresFactory,
    tmp_path: Path,
) -> None:
    if database_url is not None:
        program("pg_dump")
    target = tmp_path / "installed" / "payload.txt"
    source = make_source(tmp_path / "src", target, "version one\n")
    package_id = create_package(site, source)
    client = tmp_path / "client"
    client_id = register_client(site, client)
    backups = tmp_path / "backups"

    first = backup(site.home, backups)
    assert (first["versions"], first["blobs"], first["blobs_copied"]) == (1, 2, 2)

    (source / "payload.txt").write_text("version two\n")
    site.qm("package", "update", package_id)
    wait_installed(site, package_id, version=2)
    deployment_id = deploy_to(site, package_id, [client_id], "Lab")
    second = backup(site.home, backups)
    # The second backup copies only the one new blob (the new payload).
    assert (second["versions"], second["blobs"], second["blobs_copied"]) == (2, 3, 1)
    assert second["bytes_copied"] == len("version two\n")

    hashes = versions(site, package_id)
    keys = run_qm("site", "keys", "--home", str(site.home), "--json").json()
    site.stop()
    shutil.rmtree(site.home)  # the disaster: the site's host is gone

    with contextlib.ExitStack() as stack:
        home = tmp_path / "restored"
        options: list[str] = []
        if database_url is not None:
            options = ["--database", stack.enter_context(postgres_database())]
        restored_json = restore(backups, home, *options, "--json").json()
        assert restored_json["versions"] == 2 and restored_json["blobs_verified"] == 3
        restored = SiteServer(
            home, site.port, Daemon(["site", "serve", "--home", str(home)], tmp_path / "r.log")
        )
        restored.start()
        stack.callback(restored.stop)

        assert versions(restored, package_id) == hashes
        assert run_qm("site", "keys", "--home", str(home), "--json").json() == keys
        wait_installed(restored, package_id, version=2)  # the embedded DP pulled it again

        run_client(client)  # registered before the backup, trusting the old keys

        assert target.read_text() == "version two\n"
        assert (client / "manifests" / f"{hashes[1]}.json").is_file()
        status = deployment_status(restored, deployment_id)
        assert status["counts"]["succeeded"] == 1


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.fixture
def site_home(tmp_path: Path) -> Path:
    """A site home made as `qm site init` makes it, with one package version in its library
    and its database (no server: backup and restore work on the files)."""
    from quartermaster.site.content.packages import create_package as create
    from quartermaster.site.context import SiteContext

    home = migrated_site_home(tmp_path / "site")
    source = make_source(tmp_path / "src", tmp_path / "out.txt", "payload\n")
    ctx = SiteContext.open(home)
    try:
        create(ctx, "Demo", str(source), [])
    finally:
        ctx.close()
    return home


def test_a_backup_is_private_to_its_owner(site_home: Path, tmp_path: Path) -> None:
    """It holds the site's private keys: folders 0700, files 0600, the key among them."""
    backups = tmp_path / "backups"
    backup(site_home, backups)

    found = modes(backups)
    assert any(name.endswith("keys/signing.key") for name in found)
    assert any(name.startswith("blobs/content/sha256/") for name in found)
    for name, mode in found.items():
        path = backups / name if name != "." else backups
        assert mode == (0o700 if path.is_dir() else 0o600), name
    restored = tmp_path / "restored"
    restore(backups, restored)
    assert stat.S_IMODE((restored / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((restored / "keys" / "signing.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((restored / "admin.token").stat().st_mode) == 0o600
    for name, mode in modes(restored).items():  # as private as `qm site init` makes a home
        assert not mode & 0o077, name
    assert (restored / "keys" / "signing.key").read_bytes() == (
        site_home / "keys" / "signing.key"
    ).read_bytes()


def test_restore_refuses_a_home_in_use_and_a_damaged_blob(site_home: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backup(site_home, backups)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = restore(backups, busy, check=False)
    assert refused.code != 0 and "is not empty" in refused.stderr
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]

    description = json.loads(next((backups / "backups").glob("*/backup.json")).read_text())
    sha = sorted(description["blobs"])[0]
    blob = backups / "blobs" / blob_relpath(sha)
    os.chmod(blob, 0o600)
    blob.write_bytes(b"rotted" + blob.read_bytes())
    damaged = restore(backups, tmp_path / "new", check=False)
    assert damaged.code != 0 and f"blob {sha} in the backup does not match" in damaged.stderr
    assert not (tmp_path / "new").exists()  # nothing half-restored is left to be served


def test_a_half_written_backup_is_never_restored(site_home: Path, tmp_path: Path) -> None:
    """A backup interrupted before its rename stays `.partial-…`: restore takes the newest
    complete one, and the next backup clears the leftover away."""
    backups = tmp_path / "backups"
    backup(site_home, backups)
    complete = (backups / "latest").read_text().strip()
    leftover = backups / "backups" / ".partial-29990101T000000000000Z"
    shutil.copytree(backups / "backups" / complete, leftover)
    (leftover / "backup.json").unlink()

    result = restore(backups, tmp_path / "restored", "--json").json()
    assert result["backup"] == complete

    again = backup(site_home, backups)
    assert again["blobs_copied"] == 0
    assert not leftover.exists()
    bad = restore(leftover, tmp_path / "from-leftover", check=False)
    assert bad.code != 0 and "holds no complete backup" in bad.stderr


def test_restore_asks_for_a_new_database_for_a_postgresql_backup(
    site_home: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backup(site_home, backups)
    wrong = restore(
        backups, tmp_path / "r", "--database", "postgresql://u@127.0.0.1:1/x", check=False
    )
    assert wrong.code != 0 and "this backup is of a SQLite site" in wrong.stderr
    assert not (tmp_path / "r").exists()
