"""Jobs with real site processes: a snapshot killed with SIGKILL is resumed after the
restart and publishes once; two site processes on one PostgreSQL database never both run a
job; the CLI waits with progress, or not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from quartermaster.site.db import Database
from quartermaster.site.home import SiteHome
from quartermaster.site.models import Job, Package, PackageVersion
from tests.e2e.processes import Daemon, SiteServer, free_port_pair, wait_until
from tests.e2e.site_templates import migrated_site_home
from tests.operations.servers import site_with_options

pytestmark = pytest.mark.e2e
FILES = 9000


def _job(site: SiteServer, job_id: int) -> dict[str, Any]:
    return dict(site.api("GET", f"/api/v1/jobs/{job_id}"))


def _many_files(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    for n in range(count):
        (folder / f"{n % 50:02d}").mkdir(exist_ok=True)
        (folder / f"{n % 50:02d}" / f"file-{n:05d}.dat").write_bytes(
            n.to_bytes(4, "big") * (size // 4)
        )


def test_a_snapshot_killed_mid_way_is_resumed_and_publishes_once(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _many_files(source, FILES, 4096)
    site = site_with_options(tmp_path)
    database = Database(SiteHome(site.home).load_config().database_url)
    try:
        accepted = site.api("POST", "/api/v1/packages", json={"name": "Big", "source": str(source)})
        job_id, package_id = accepted["job_id"], accepted["package_id"]
        wait_until(
            lambda: _job(site, job_id)["files_done"] > 0, "the snapshot under way", interval=0.02
        )
        site.daemon.kill()  # SIGKILL: no clean-up of any kind
        with database.session() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.state == "running", "the snapshot ended before kill"
            assert 0 < job.files_done < FILES
            assert session.get(Package, package_id) is None  # nothing half-published
            assert session.scalars(select(PackageVersion)).all() == []

        site.start()  # the new process finds the job of a process that is gone
        waited = site.qm("job", "wait", str(job_id))
        assert f"job {job_id} snapshot.create {package_id}: succeeded" in waited.stdout
        job_after = _job(site, job_id)
        assert job_after["attempts"] == 2
        assert job_after["reason"].startswith("resumed: the site process running it")
        assert (job_after["files_done"], job_after["files_total"]) == (FILES, FILES)
        package = site.api("GET", f"/api/v1/packages/{package_id}")
        assert [(v["source_version"], v["file_count"]) for v in package["versions"]] == [(1, FILES)]
        assert not [p for p in (site.home / "library" / "tmp").rglob("*") if p.is_file()]
        shown = site.qm("job", "show", str(job_id), "--json").json()
        assert shown["result"]["package_id"] == package_id
    finally:
        site.stop()
        database.dispose()


def test_the_cli_waits_with_progress_or_returns_at_once(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _many_files(source, 120, 1000)
    site = site_with_options(tmp_path)
    try:
        created = site.qm("package", "create", "--name", "Tool", "--source", str(source))
        package_id = created.stdout.strip()
        assert re.fullmatch(r"QM1[0-9A-F]{5}", package_id), created.stdout
        assert "120/120 files" in created.stderr and "1/1 DPs" in created.stderr
        states = site.api("GET", f"/api/v1/packages/{package_id}")["distribution"]
        assert [(d["dp"], d["state"]) for d in states] == [("site", "installed")]  # held

        (source / "00" / "new.txt").write_text("a change\n")
        queued = site.qm("package", "update", package_id, "--no-wait")
        job_id = int(queued.stdout.strip())
        assert f"qm job wait {job_id}" in queued.stderr
        waited = site.qm("job", "wait", str(job_id), "--json").json()
        assert waited["state"] == "succeeded" and waited["result"]["source_version"] == 2
        listed = site.qm("job", "list", "--json").json()["jobs"]
        assert {j["kind"] for j in listed} == {"snapshot.create", "snapshot.update", "distribution"}
        unknown = site.qm("job", "show", "999999", check=False)
        assert unknown.code == 1 and "job 999999 does not exist" in unknown.stderr

        validated = site.qm("dp", "validate", "site")
        assert validated.stdout.strip() == "1" and "1/1 versions" in validated.stderr
        status = site.qm("site", "status")
        assert re.search(r"jobs: \d+ running, \d+ queued, 0 failed", status.stdout)
        counts = site.qm("site", "status", "--json").json()["jobs"]
        assert counts["failed"] == 0 and counts["succeeded"] >= 4  # snapshots, validation
    finally:
        site.stop()


@pytest.mark.postgresql
def test_two_site_processes_on_one_database_never_run_one_job_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    servers = _two_site_processes(tmp_path, postgres_url)
    try:
        job_ids = []
        for n in range(8):
            source = tmp_path / f"src-{n}"
            _many_files(source, 200, 500)
            server = servers[n % 2]
            body = {"name": f"P{n}", "source": str(source)}
            job_ids.append(server.api("POST", "/api/v1/packages", json=body)["job_id"])
        ended = [
            wait_until(
                lambda j=job_id: (
                    (job := _job(servers[0], j))["state"] in ("succeeded", "failed") and job
                ),
                f"job {job_id}",
                timeout=300,
            )
            for job_id in job_ids
        ]
        assert all(job["state"] == "succeeded" for job in ended), [j["reason"] for j in ended]
        followers = [job["result"]["distribution_job"] for job in ended]
        for job_id in followers:  # the embedded DP (process a) takes them all in
            wait_until(
                lambda j=job_id: _job(servers[0], j)["state"] in ("succeeded", "failed"),
                f"job {job_id}",
                timeout=300,
            )
    finally:
        for server in servers:
            server.stop()
    assert all(job["state"] == "succeeded" and job["attempts"] == 1 for job in ended), ended
    started = _times_started(tmp_path, r"job (\d+) \(.*\) started")
    assert set(started) == set(job_ids) | set(followers)
    assert set(started.values()) == {1}, started  # each job ran in one process, once


def _two_site_processes(
    tmp_path: Path, database: str | None, settings: dict[str, Any] | None = None
) -> list[SiteServer]:
    """Two `qm site serve` of one home and database (the second without the embedded DP),
    logging JSON lines to tmp_path/a.log and b.log; `settings` are set before they start."""
    from quartermaster.site.settings import update_settings

    home = tmp_path / "site"
    first_port, second_port = free_port_pair(), free_port_pair()
    migrated_site_home(home, database, "QM1", f"127.0.0.1:{first_port}")
    if settings:
        db = Database(SiteHome(home).load_config().database_url)
        with db.session() as session:
            update_settings(session, settings, "test")
        db.dispose()
    servers = []
    for name, port, extra in (("a", first_port, []), ("b", second_port, ["--no-dp"])):
        args = ["site", "serve", "--home", str(home), "--listen", f"127.0.0.1:{port}"]
        args += ["--log-format", "json", *extra]
        servers.append(SiteServer(home, port, Daemon(args, tmp_path / f"{name}.log")))
    for server in servers:
        server.daemon.start()
        wait_until(lambda s=server: s.daemon.alive() and _answers(s.url), "site API")
    return servers


def _times_started(tmp_path: Path, pattern: str) -> dict[int, int]:
    """Job ID -> how many times a line of a.log or b.log says it started."""
    started: dict[int, int] = {}
    for name in ("a", "b"):
        for line in (tmp_path / f"{name}.log").read_text().splitlines():
            if line.startswith("{"):
                found = re.match(pattern, json.loads(line)["message"])
                if found:
                    started[int(found[1])] = started.get(int(found[1]), 0) + 1
    return started


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_two_site_processes_on_one_database_never_run_garbage_collection_twice(
    tmp_path: Path, database_url: str | None
) -> None:
    """Both processes submit a `gc` job every second; the database keeps it to one queued or
    running, so the sweeps follow each other and each ran once, in one process."""
    servers = _two_site_processes(tmp_path, database_url, {"gc_interval_seconds": 1})
    database = Database(SiteHome(tmp_path / "site").load_config().database_url)

    def gc_jobs() -> list[Job]:
        with database.session() as session:
            rows = session.scalars(select(Job).where(Job.kind == "gc").order_by(Job.id)).all()
            session.expunge_all()
            return list(rows)

    try:
        wait_until(
            lambda: sum(job.state == "succeeded" for job in gc_jobs()) >= 4, "four sweeps", 120
        )
    finally:
        for server in servers:
            server.stop()
    jobs = [job for job in gc_jobs() if job.state != "queued"]
    database.dispose()
    assert all(job.state == "succeeded" and job.attempts == 1 for job in jobs), [
        (job.id, job.state, job.reason) for job in jobs
    ]
    assert {job.target for job in jobs} == {"library"}
    spans = sorted((job.started, job.finished) for job in jobs)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end is not None and start is not None and end <= start  # never two at once
    started = _times_started(tmp_path, r"job (\d+) \(gc library\) started")
    assert set(started) == {job.id for job in jobs}
    assert set(started.values()) == {1}, started
