"""The content library's sweep never deletes a blob a snapshot has stored or found but not
yet committed a version for, and does delete what nothing uses."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quartermaster.core.store_layout import blob_path
from quartermaster.site import settings
from quartermaster.site.content.packages import create_package, update_package
from quartermaster.site.content.retention import collect_garbage, prune_package
from quartermaster.site.content_library import DEAD_TEMP_AGE, LOCK_FILE
from quartermaster.site.context import SiteContext
from tests.e2e.site_templates import migrated_site_home


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[SiteContext]:
    context = SiteContext.open(migrated_site_home(tmp_path / "site"))
    yield context
    context.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source(folder: Path, **files: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_a_sweep_waits_for_a_snapshot_until_its_version_is_committed(
    ctx: SiteContext, tmp_path: Path
) -> None:
    """The race: a snapshot has stored a new blob (or found one that nothing used) and not yet
    committed the version naming it. A sweep must not run in between."""
    lock = ctx.library.root / LOCK_FILE
    with ctx.library.writing():
        snapshot = ctx.library.snapshot(source(tmp_path / "src", a=b"new content"))
        assert ctx.library.has_blob(sha(b"new content"))
        with open(lock, "a") as probe, pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a sweep takes
        sweeper = threading.Thread(target=collect_garbage, args=(ctx,))
        sweeper.start()  # blocks on the lock for as long as the snapshot holds it
    sweeper.join()
    # Released with no version committed (a snapshot that failed after storing): now it goes.
    assert snapshot.files and not ctx.library.has_blob(sha(b"new content"))

    # Through the real path: the lock is held until the version is committed, then swept.
    package = create_package(ctx, "Demo", str(source(tmp_path / "src", a=b"new content")), [])
    swept = collect_garbage(ctx)
    assert swept.blobs == 0 and ctx.library.has_blob(sha(b"new content"))
    assert package["source_version"] == 1


def test_a_sweep_removes_unused_blobs_manifests_and_dead_temps(
    ctx: SiteContext, tmp_path: Path
) -> None:
    folder = source(tmp_path / "src", a=b"one", keep=b"shared")
    package_id = create_package(ctx, "Demo", str(folder), [])["package_id"]
    source(folder, a=b"two")
    update_package(ctx, package_id)
    stray = blob_path(ctx.library.root, sha(b"stray"))
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")  # left by a snapshot that died before its version
    dead = ctx.library.tmp / "snap-dead"
    dead.write_bytes(b"half")
    an_hour_ago = time.time() - 2 * DEAD_TEMP_AGE
    os.utime(dead, (an_hour_ago, an_hour_ago))
    (ctx.library.tmp / "job-7").mkdir()  # a job's fresh folder: not a dead snapshot's

    result = prune_package(ctx, package_id, keep=1)
    assert (result["kept"], result["pruned"]) == ([2], [1])
    # Version 1 is in its grace period: only what no version ever used goes.
    assert result["library"] == {"blobs": 1, "bytes": 5, "manifests": 0, "temps": 1}
    assert (ctx.library.tmp / "job-7").is_dir() and not dead.exists()
    assert ctx.library.has_blob(sha(b"one"))

    with ctx.db.session() as session:
        settings.update_settings(session, {"content_grace_seconds": 0}, "test")
    swept = collect_garbage(ctx)
    assert (swept.blobs, swept.manifests) == (1, 1)
    assert not ctx.library.has_blob(sha(b"one"))
    assert ctx.library.has_blob(sha(b"two")) and ctx.library.has_blob(sha(b"shared"))
    assert (ctx.library.root / LOCK_FILE).exists()
