"""Garbage collection is a job kind (`gc`): `POST /packages/{id}/prune` answers 202 with the
job, the job shows in the job list, the database keeps it to one queued or running per
target whoever submits it, and a failed one records its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from quartermaster.site.jobs import records, submission
from quartermaster.site.models import Job
from tests.operations.test_jobs import wait_for_end
from tests.security.conftest import SiteApi


def _package_with_two_versions(site_api: SiteApi, tmp_path: Path) -> str:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("version 1\n")
    body = {"name": "Tool", "source": str(source)}
    created = site_api.ok("POST", "/api/v1/packages", "operator", json=body)
    site_api.wait_for_job(created["job_id"])
    (source / "a.txt").write_text("version 2\n")
    updated = site_api.ok("POST", f"/api/v1/packages/{created['package_id']}/update", "operator")
    site_api.wait_for_job(updated["job_id"])
    return str(created["package_id"])


def test_a_prune_is_a_gc_job_in_the_job_list_with_its_result(
    site_api: SiteApi, tmp_path: Path
) -> None:
    package_id = _package_with_two_versions(site_api, tmp_path)
    site_api.ok("POST", "/api/v1/settings", json={"content_grace_seconds": 0})
    answer = site_api.call(
        "POST", f"/api/v1/packages/{package_id}/prune", "operator", json={"keep": 1}
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["Location"] == f"/api/v1/jobs/{job['job_id']}"
    assert (job["kind"], job["target"], job["package_id"]) == ("gc", package_id, package_id)
    done = site_api.wait_for_job(job["job_id"])
    result = done["result"]
    assert (result["kept"], result["pruned"], result["keep_versions"]) == ([2], [1], 1)
    assert result["library"]["blobs"] == 1  # version 1's a.txt, grace 0
    listed = site_api.ok("GET", "/api/v1/jobs", "viewer")["jobs"]
    assert listed[0]["job_id"] == job["job_id"] and listed[0]["kind"] == "gc"
    assert done["created_by"] == "operator"


def test_a_prune_is_refused_at_once_for_bad_input_and_for_viewers(site_api: SiteApi) -> None:
    missing = site_api.call("POST", "/api/v1/packages/QM1FFFFF/prune", "operator", json={})
    assert missing.status_code == 404
    zero = site_api.call("POST", "/api/v1/packages/QM1FFFFF/prune", "operator", json={"keep": 0})
    assert zero.status_code == 422
    viewer = site_api.call("POST", "/api/v1/packages/QM1FFFFF/prune", "viewer", json={})
    assert viewer.status_code == 403
    assert (
        site_api.call("POST", "/api/v1/packages/QM1FFFFF/prune", None, json={}).status_code == 401
    )
    assert site_api.ok("GET", "/api/v1/jobs", "viewer")["jobs"] == []


def test_only_one_gc_per_target_is_queued_or_running_whoever_submits(
    site_api: SiteApi,
) -> None:
    ctx = site_api.ctx
    first = submission.collect_garbage(ctx, "site schedule")
    assert first is not None and first["kind"] == "gc" and first["target"] == "library"
    assert submission.collect_garbage(ctx, "another site process") is None
    # the database itself refuses, not only this code
    with pytest.raises(IntegrityError), ctx.db.session() as session:
        records.submit(session, "gc", "library", {}, "a racing process")
    site_api.wait_for_job(first["job_id"])
    again = submission.collect_garbage(ctx, "site schedule")  # the first ended: allowed
    assert again is not None and again["job_id"] != first["job_id"]
    site_api.wait_for_job(again["job_id"])
    with ctx.db.session() as session:  # other kinds are not limited
        records.submit(session, "validation", "x", {}, "t")
        records.submit(session, "validation", "x", {}, "t")
        session.execute(update(Job).where(Job.kind == "validation").values(state="failed"))


def test_a_second_prune_of_a_package_while_one_is_open_says_which_job(
    site_api: SiteApi, tmp_path: Path
) -> None:
    package_id = _package_with_two_versions(site_api, tmp_path)
    site_api.ctx.close()  # no runner: the first prune stays queued
    with site_api.ctx.db.session() as session:
        first = records.submit(session, "gc", package_id, {"package_id": package_id}, "t").id
    second = site_api.call("POST", f"/api/v1/packages/{package_id}/prune", "operator", json={})
    assert second.status_code == 409, second.text
    assert f"job {first}" in second.json()["error"]["message"]


def test_a_failed_gc_records_its_reason(site_api: SiteApi, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any) -> None:
        raise PermissionError(13, "Permission denied", "library/content/sha256/ab")

    monkeypatch.setattr(site_api.ctx.library, "sweep", refused)
    job = submission.collect_garbage(site_api.ctx, "site schedule")
    assert job is not None
    ended = wait_for_end(site_api, job["job_id"])
    assert ended["state"] == "failed"
    assert "the content library sweep failed" in ended["reason"]
    assert "Permission denied" in ended["reason"]
    with site_api.ctx.db.session() as session:  # a failed one no longer blocks the next
        assert session.scalar(select(Job.state).where(Job.id == job["job_id"])) == "failed"
    assert submission.collect_garbage(site_api.ctx, "site schedule") is not None


def test_the_gc_interval_is_an_admin_setting_with_bounds(site_api: SiteApi) -> None:
    assert site_api.ok("GET", "/api/v1/settings")["gc_interval_seconds"] == 3600
    for bad in (-1, 30 * 86400 + 1, "60", 1.5):
        refused = site_api.call("POST", "/api/v1/settings", json={"gc_interval_seconds": bad})
        assert refused.status_code == 422, (bad, refused.text)
    operator = site_api.call(
        "POST", "/api/v1/settings", "operator", json={"gc_interval_seconds": 0}
    )
    assert operator.status_code == 403
    changed = site_api.ok("POST", "/api/v1/settings", json={"gc_interval_seconds": 0})
    assert changed["gc_interval_seconds"] == 0  # never: only `qm package prune` sweeps
