"""Background jobs (site/jobs/): claimed by one process only, taken back from a dead
process (resumed, or failed with the reason), and what the API answers about them."""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from quartermaster.site.context import SiteContext
from quartermaster.site.db import Database
from quartermaster.site.jobs import records
from quartermaster.site.models import Job, utcnow
from quartermaster.site.setup import init_site
from tests.e2e.site_templates import with_migrated_sqlite
from tests.security.conftest import SiteApi


def _dead_owner() -> str:
    """The owner string of a process of this host that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{records.this_owner().split(':')[0]}:{child.pid}:1"


def test_a_package_is_made_by_a_job_the_api_answers_202_for(
    site_api: SiteApi, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for n in range(50):
        (source / f"f{n}.txt").write_text(f"file {n}\n")
    answer = site_api.call(
        "POST", "/api/v1/packages", "operator", json={"name": "Tool", "source": str(source)}
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['job_id']}"
    assert (job["kind"], job["state"], job["target"]) == (
        "snapshot.create",
        "queued",
        job["package_id"],
    )
    done = site_api.wait_for_job(job["job_id"])
    assert (done["files_done"], done["files_total"]) == (50, 50)
    assert (
        done["bytes_done"] == done["bytes_total"] == sum(p.stat().st_size for p in source.iterdir())
    )
    assert done["result"]["package_id"] == job["package_id"]
    assert done["result"]["source_version"] == 1 and done["attempts"] == 1
    assert done["created_by"] == "operator"
    package = site_api.ok("GET", f"/api/v1/packages/{job['package_id']}", "viewer")
    assert package["versions"][0]["file_count"] == 50
    listed = site_api.ok("GET", "/api/v1/jobs", "viewer")["jobs"]
    assert [j["job_id"] for j in listed][-1] == job["job_id"]  # newest first
    assert listed[0]["kind"] == "distribution"  # its follow-up
    assert done["result"]["distribution_job"] == listed[0]["job_id"]
    assert not list((site_api.root / "library" / "tmp").glob("job-*"))  # temps cleaned


def test_who_may_see_jobs(site_api: SiteApi) -> None:
    assert site_api.call("GET", "/api/v1/jobs", None).status_code == 401
    assert site_api.call("GET", "/api/v1/jobs/1", None).status_code == 401
    assert site_api.call("GET", "/api/v1/jobs", "viewer").status_code == 200
    missing = site_api.call("GET", "/api/v1/jobs/424242", "viewer")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert site_api.call("GET", "/api/v1/jobs/0", "viewer").status_code == 422
    assert site_api.call("GET", "/api/v1/jobs?state=bogus", "viewer").status_code == 422
    # a viewer reads jobs but cannot start a snapshot
    refused = site_api.call("POST", "/api/v1/packages", "viewer", json={"name": "x", "source": "/"})
    assert refused.status_code == 403


def test_what_can_be_refused_at_once_is_refused_before_a_job_or_an_id(
    site_api: SiteApi, tmp_path: Path
) -> None:
    missing = site_api.call(
        "POST",
        "/api/v1/packages",
        "operator",
        json={"name": "Tool", "source": str(tmp_path / "nothing-here")},
    )
    assert missing.status_code == 422 and "does not exist" in missing.json()["error"]["message"]
    assert site_api.ok("GET", "/api/v1/jobs", "viewer")["jobs"] == []


def test_a_source_the_walk_refuses_is_refused_by_the_request(
    site_api: SiteApi, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "ok.txt").write_text("fine\n")
    os.symlink("/etc/hostname", source / "link")
    answer = site_api.call(
        "POST", "/api/v1/packages", "operator", json={"name": "Bad", "source": str(source)}
    )
    assert answer.status_code == 422 and "symbolic link" in answer.json()["error"]["message"]
    assert site_api.ok("GET", "/api/v1/jobs", "viewer")["jobs"] == []
    (source / "link").unlink()
    good = site_api.ok(
        "POST", "/api/v1/packages", "operator", json={"name": "Good", "source": str(source)}
    )
    assert good["package_id"].endswith("00001")  # the refused request took no ID


def test_a_job_that_fails_says_why_and_an_unexpected_error_says_where_to_look(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from quartermaster.core.errors import SourceError
    from quartermaster.site.jobs.runner import JobContext, JobRunner

    root = tmp_path / "site"
    init_site(with_migrated_sqlite(root), "QM1", "job tests")
    ctx = SiteContext.open(root)

    def refused(_ctx: SiteContext, job: JobContext) -> dict[str, Any]:
        job.report(1, 10, 2, 20)
        raise SourceError("the source went away", "put it back")

    def broken(_ctx: SiteContext, _job: JobContext) -> dict[str, Any]:
        raise KeyError("a bug")

    runner = JobRunner(ctx, {"test.refused": refused, "test.broken": broken})
    try:
        with ctx.db.session() as session:
            first = records.submit(session, "test.refused", "x", {}).id
            second = records.submit(session, "test.broken", "y", {}).id
        runner.kick()
        ended = [wait_for_job_row(ctx, job_id) for job_id in (first, second)]
    finally:
        runner.stop()
        ctx.close()
    assert (ended[0].state, ended[0].reason) == ("failed", "the source went away (put it back)")
    assert (ended[0].files_done, ended[0].bytes_total) == (1, 20)
    assert ended[1].state == "failed"
    assert ended[1].reason == "internal error (KeyError); see the site server's log"
    assert any(r.exc_info and "job" in r.getMessage() for r in caplog.records)


def wait_for_job_row(ctx: SiteContext, job_id: int) -> Job:
    from tests.e2e.processes import wait_until

    def ended() -> Job | None:
        with ctx.db.session() as session:
            job = session.get(Job, job_id)
            return job if job is not None and job.state in records.FINISHED else None

    return wait_until(ended, f"job {job_id}")


def wait_for_end(site_api: SiteApi, job_id: int) -> dict[str, Any]:
    from tests.e2e.processes import wait_until

    return dict(
        wait_until(
            lambda: (
                (j := site_api.ok("GET", f"/api/v1/jobs/{job_id}", "viewer"))["state"]
                in ("succeeded", "failed")
                and j
            ),
            f"job {job_id}",
        )
    )


def test_the_jobs_of_a_dead_process_are_resumed_then_failed_with_the_reason(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{with_migrated_sqlite(tmp_path / 'site') / 'site.db'}")
    try:
        dead, alive_elsewhere = _dead_owner(), "another-host:1:1"
        with db.session() as session:
            ids = [
                records.submit(session, "snapshot.update", f"QM10000{n}", {}).id for n in (1, 2, 3)
            ]
        for job_id, owner in zip(ids, (dead, alive_elsewhere, dead), strict=True):
            assert records.claim_next(db, owner, ("snapshot.update",)) == job_id
        with db.session() as session:  # the third was interrupted twice before
            session.execute(
                update(Job).where(Job.id == ids[2]).values(attempts=records.MAX_ATTEMPTS)
            )

        now = utcnow()
        assert sorted(records.take_back_abandoned(db, now)) == [
            (ids[0], records.QUEUED),
            (ids[2], records.FAILED),
        ]
        with db.session() as session:
            jobs = {j.id: j for j in session.scalars(select(Job))}
        assert jobs[ids[0]].reason.startswith("resumed: the site process running it")
        assert jobs[ids[0]].owner == "" and jobs[ids[0]].attempts == 1
        assert jobs[ids[1]].state == records.RUNNING  # its host is not this one: may live
        assert jobs[ids[2]].reason.startswith(f"interrupted {records.MAX_ATTEMPTS} times")
        assert jobs[ids[2]].finished is not None

        later = now + records.LEASE + timedelta(seconds=1)  # no heartbeat for a lease
        assert records.take_back_abandoned(db, later) == [(ids[1], records.QUEUED)]
        # a resumed job is claimed again like a new one, counting its attempts
        assert records.claim_next(db, "me:1:1", ("snapshot.update",)) == ids[0]
        with db.session() as session:
            assert session.get(Job, ids[0]).attempts == 2  # type: ignore[union-attr]
    finally:
        db.dispose()


def test_progress_from_a_process_that_lost_its_job_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{with_migrated_sqlite(tmp_path / 'site') / 'site.db'}")
    try:
        with db.session() as session:
            job_id = records.submit(session, "snapshot.update", "QM100001", {}).id
        assert records.claim_next(db, "first:1:1", ("snapshot.update",)) == job_id
        later = utcnow() + records.LEASE + timedelta(seconds=1)
        assert records.take_back_abandoned(db, later) == [(job_id, records.QUEUED)]
        assert records.claim_next(db, "second:2:2", ("snapshot.update",)) == job_id
        assert not records.progress(db, job_id, "first:1:1", (1, 2))  # must stop
        assert not records.finish(db, job_id, "first:1:1", records.SUCCEEDED)
        assert records.progress(db, job_id, "second:2:2", (1, 2))
        assert records.finish(db, job_id, "second:2:2", records.SUCCEEDED, {"ok": True})
    finally:
        db.dispose()


def test_racing_claimers_never_take_one_job_twice(database_url: str | None, tmp_path: Path) -> None:
    """Four claimers with their own connections (as four site processes have) race for 200
    jobs: every job is claimed exactly once (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one
    writer at a time)."""
    url = database_url or f"sqlite:///{with_migrated_sqlite(tmp_path / 'site') / 'site.db'}"
    setup = Database(url)
    with setup.session() as session:
        for n in range(200):
            records.submit(session, "snapshot.update", f"job {n}", {})
    setup.dispose()
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claimer(owner: str) -> None:
        db = Database(url)
        mine: list[int] = []
        try:
            start.wait()
            while (job_id := records.claim_next(db, owner, ("snapshot.update",))) is not None:
                mine.append(job_id)
        finally:
            db.dispose()
        claimed[owner] = mine

    threads = [threading.Thread(target=claimer, args=(f"p{n}:1:1",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    every = [job_id for mine in claimed.values() for job_id in mine]
    assert len(claimed) == 4 and len(every) == 200 and len(set(every)) == 200
    db = Database(url)
    try:
        with db.session() as session:
            rows = session.scalars(select(Job)).all()
    finally:
        db.dispose()
    assert {(j.state, j.attempts) for j in rows} == {(records.RUNNING, 1)}
    owner_of = {j.id: j.owner for j in rows}
    assert all(owner_of[job_id] == owner for owner, mine in claimed.items() for job_id in mine)
