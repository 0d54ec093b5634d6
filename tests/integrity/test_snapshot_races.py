"""A source file swapped while the snapshot runs: for a link to a secret, or for a FIFO.

The walk sees a regular file; the copy must read that same file (same device and inode),
opened through folder handles without following a link, and a FIFO must not block it.
Before, a link swapped in between the walk and the read published admin.token, and a FIFO
hung a snapshot worker for good.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from quartermaster.core.errors import SourceError
from quartermaster.site import content_library
from quartermaster.site.content_library import ContentLibrary
from tests.e2e.processes import SiteServer, start_site, wait_until

ATTEMPTS = 24


def _swapper(target: Path, make_other: Callable[[Path], object], stop: threading.Event) -> None:
    """Keep replacing `target` by turns with a regular file and with something else, each
    time with one atomic rename, until `stop`."""
    plain, other = target.with_name(".plain"), target.with_name(".other")
    while not stop.is_set():
        plain.write_bytes(b"echo harmless\n")
        os.rename(plain, target)
        make_other(other)
        os.rename(other, target)


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[SiteServer]:
    server = start_site(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _create(site: SiteServer, source: Path, n: int) -> httpx.Response:
    return httpx.post(
        f"{site.url}/api/v1/packages",
        headers={"Authorization": f"Bearer {site.token}"},
        json={
            "name": f"Race {n}",
            "source": str(source),
            "programs": [{"name": "Install", "command": "sh install.sh"}],
        },
        timeout=60,  # a worker stuck on a FIFO never answers: the attempt fails
    )


def _race(
    site: SiteServer, tmp_path: Path, make_other: Callable[[Path], object]
) -> list[httpx.Response]:
    source = tmp_path / "src"
    source.mkdir()
    for n in range(8):  # some company for the swapped file, so the snapshot has work
        (source / f"file{n}.txt").write_bytes(os.urandom(4096))
    target = source / "install.sh"
    target.write_bytes(b"echo harmless\n")
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        swapping = pool.submit(_swapper, target, make_other, stop)
        try:
            answers = [_create(site, source, n) for n in range(ATTEMPTS)]
        finally:
            stop.set()
        swapping.result()
    return answers


@pytest.mark.e2e
def test_a_link_swapped_in_mid_snapshot_never_publishes_its_target(
    sqlite_site: SiteServer, tmp_path: Path
) -> None:
    site = sqlite_site
    secret = site.home / "admin.token"
    answers = _race(site, tmp_path, lambda other: other.symlink_to(secret))
    for answer in answers:
        assert answer.status_code in (202, 422), answer.text  # 202: a snapshot job
        if answer.status_code == 422:
            assert answer.json()["error"]["code"] == "bad_source", answer.text
    for job in _jobs_ended(site, answers):
        if job["state"] == "failed":  # the swap seen by the snapshot itself
            assert "changed while it was being read" in job["reason"] or "link" in job["reason"]
    secret_hash = hashlib.sha256(secret.read_bytes()).hexdigest()
    library = site.home / "library"
    assert not [p for p in library.rglob("*") if p.name.startswith(secret_hash)]
    for package in site.api("GET", "/api/v1/packages")["packages"]:
        shown = site.api("GET", f"/api/v1/packages/{package['package_id']}")
        assert shown["versions"][0]["total_size"] == 8 * 4096 + len(b"echo harmless\n")


@pytest.mark.e2e
def test_a_fifo_swapped_in_mid_snapshot_does_not_hang_the_site(
    sqlite_site: SiteServer, tmp_path: Path
) -> None:
    answers = _race(sqlite_site, tmp_path, lambda other: os.mkfifo(other))
    assert {a.status_code for a in answers} <= {202, 422}, [a.text for a in answers]
    _jobs_ended(sqlite_site, answers)  # no snapshot job hangs on a FIFO
    assert sqlite_site.api("GET", "/api/v1/packages")  # still answering


def _jobs_ended(site: SiteServer, answers: list[httpx.Response]) -> list[dict[str, Any]]:
    """The snapshot jobs the accepted requests started, once each has ended."""
    ids = [a.json()["job_id"] for a in answers if a.status_code == 202]
    return [
        wait_until(
            lambda i=i: (
                (job := site.api("GET", f"/api/v1/jobs/{i}"))["state"] in ("succeeded", "failed")
                and job
            ),
            f"job {i}",
        )
        for i in ids
    ]


def test_the_copy_refuses_anything_but_the_file_the_walk_saw(tmp_path: Path) -> None:
    """The same attack without a race: walk, swap, then copy, in this order."""
    source, secret = tmp_path / "src", tmp_path / "secret"
    source.mkdir()
    secret.write_text("admin token\n")
    (source / "sub").mkdir()

    def link(path: Path) -> None:
        path.unlink()
        path.symlink_to(secret)

    def hard_link(path: Path) -> None:
        path.unlink()
        os.link(secret, path)

    def fifo(path: Path) -> None:
        path.unlink()
        os.mkfifo(path)

    swaps: dict[str, Callable[[Path], object]] = {
        "a.sh": link,
        "b.sh": fifo,
        "c.sh": lambda p: (p.rename(tmp_path / "kept"), p.write_text("another inode\n")),
        "sub/d.sh": hard_link,
    }
    for name in swaps:
        (source / name).write_text("echo harmless\n")
    library = ContentLibrary(tmp_path / "library")
    library.tmp.mkdir(parents=True)
    root_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = {f.relpath: f for f in content_library.walk_source(root_fd, source)}
        for name, swap in swaps.items():
            swap(source / name)
        run = content_library._SnapshotRun(library, root_fd)
        for name in swaps:
            with pytest.raises(SourceError, match="changed while it was being read"):
                run.store_file(found[name])
        (source / "sub").rename(tmp_path / "moved")  # a folder swapped for a link
        (source / "sub").symlink_to(tmp_path / "moved")
        with pytest.raises(SourceError, match="changed while it was being read"):
            run.store_file(found["sub/d.sh"])
    finally:
        os.close(root_fd)
    assert not list((tmp_path / "library").rglob("content"))
