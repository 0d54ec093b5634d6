"""Logs of the site, the DPs and the client: one configuration (core/logging_setup.py),
access lines on both planes, request IDs that join an error answer to its log lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from quartermaster.core import logging_setup
from quartermaster.site.api.app import create_app
from quartermaster.site.context import SiteContext
from quartermaster.site.setup import init_site
from quartermaster.site.web.access import allow
from tests.e2e.processes import run_qm, wait_until
from tests.e2e.site_templates import with_migrated_sqlite
from tests.operations.servers import site_with_options


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.e2e
def test_an_error_answer_names_a_request_id_found_in_the_site_log(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "site.log"
    site = site_with_options(tmp_path, "--log-format", "json", "--log-file", str(log_file))
    try:
        stranger = httpx.get(f"{site.url}/api/v1/packages", timeout=30)
        missing = httpx.get(
            f"{site.url}/api/v1/packages/QM199999",
            headers={"Authorization": f"Bearer {site.token}"},
            timeout=30,
        )
        blob = httpx.get(f"{site.content_url}/content/sha256/ab/{'ab' * 32}", timeout=30)
        joined = httpx.get(
            f"{site.url}/healthz", headers={"X-Request-ID": "from-the-proxy.42"}, timeout=30
        )
    finally:
        site.stop()
    assert stranger.status_code == 401
    request_id = stranger.json()["error"]["request_id"]
    assert request_id and stranger.headers["X-Request-ID"] == request_id
    assert missing.status_code == 404 and missing.json()["error"]["request_id"]
    assert blob.status_code == 404 and blob.headers["X-Request-ID"]
    assert joined.headers["X-Request-ID"] == "from-the-proxy.42"  # a proxy's ID is kept

    lines = _json_lines(log_file)
    by_id = {line.get("request_id"): line for line in lines if line["logger"].endswith("access")}
    line = by_id[request_id]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/packages", 401)
    assert line["route"] == "/api/v1/packages" and line["principal"] == "-"
    assert line["bytes"] > 0 and line["duration_ms"] >= 0
    found = by_id[missing.json()["error"]["request_id"]]
    assert found["route"] == "/api/v1/packages/{package_id}"
    assert found["principal"] == "account:admin" and found["status"] == 404
    content = by_id[blob.headers["X-Request-ID"]]  # the data plane logs too
    assert content["logger"] == "quartermaster.dp.access" and content["status"] == 404
    assert by_id["from-the-proxy.42"]["path"] == "/healthz"
    # the same lines went to stderr, one JSON object each
    stderr = (tmp_path / "site-serve.log").read_text()
    assert f'"request_id": "{request_id}"' in stderr


def test_a_failing_route_answers_500_with_the_id_of_its_logged_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "site"
    init_site(with_migrated_sqlite(root), "QM1", "logging tests")
    ctx = SiteContext.open(root)

    def broken(_ctx: SiteContext) -> APIRouter:
        router = APIRouter()

        @router.get("/broken", dependencies=[allow("site.health")])
        def fail() -> None:
            raise RuntimeError("the disk is on fire")

        return router

    app = create_app(ctx)
    app.include_router(broken(ctx))
    try:
        with caplog.at_level(logging.INFO):
            answer = TestClient(app, raise_server_exceptions=False).get("/broken")
    finally:
        ctx.close()
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "internal" and error["request_id"] in error["hint"]
    assert answer.headers["X-Request-ID"] == error["request_id"]
    failed = [r for r in caplog.records if r.name == "quartermaster.site.api"]
    assert failed and failed[0].exc_info is not None
    assert getattr(failed[0], "request_id", "") == error["request_id"]
    assert "the disk is on fire" in logging_setup.JsonFormatter().format(failed[0])
    access = [r for r in caplog.records if r.name == "quartermaster.site.access"]
    assert [getattr(r, "status", None) for r in access] == [500]
    assert getattr(access[0], "request_id", None) is None  # bound by context, not passed
    assert "RuntimeError" not in answer.text  # the caller learns nothing of the inside


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_a_log_file_rotates_and_keeps_a_bounded_number_of_old_files(
    tmp_path: Path, restore_logging: None
) -> None:
    log_file = tmp_path / "qm.log"
    logging_setup.configure("text", "info", log_file, max_bytes=2000, backups=2)
    log = logging.getLogger("quartermaster.test")
    for n in range(200):
        log.info("line %d of a long run", n, extra={"n": n})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["qm.log", "qm.log.1", "qm.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    last = log_file.read_text().splitlines()[-1]
    assert "INFO" in last and "quartermaster.test line 199 of a long run n=199" in last


def test_configure_twice_replaces_its_own_handlers_only(restore_logging: None) -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    logging_setup.configure("json")
    logging_setup.configure("text")
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, logging.Formatter)]
    assert foreign in logging.getLogger().handlers
    kinds = [type(h.formatter) for h in ours if h is not foreign]
    assert kinds.count(logging_setup.TextFormatter) == 1
    assert logging_setup.JsonFormatter not in kinds
    logging.getLogger().removeHandler(foreign)


def test_lines_go_to_stderr_as_it_is_when_they_are_logged(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server thread that outlives the stderr it started with (closed by whoever swapped
    it) logs to the stderr of now, not into a closed file."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging_setup.configure("text")
    logging.getLogger("quartermaster.test").warning("to the first stderr")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("quartermaster.test").warning("to the second stderr")
    assert "to the second stderr" in second.getvalue()
    assert "Logging error" not in second.getvalue()


def test_request_ids_from_outside_are_kept_only_when_sane() -> None:
    assert logging_setup.accept_request_id("abc-123.x") == "abc-123.x"
    for offered in ("", "has space", "x" * 65, "new\nline", "ünïcode"):
        made = logging_setup.accept_request_id(offered)
        assert made != offered and len(made) == 16


@pytest.mark.e2e
@pytest.mark.parametrize("command", [["site", "serve"], ["dp", "serve"], ["client", "run"]])
def test_a_bad_log_option_is_refused_before_anything_starts(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "home"
    bad_format = run_qm(*command, "--home", str(home), "--log-format", "xml", check=False)
    assert bad_format.code == 2 and "log format 'xml'" in bad_format.stderr
    bad_level = run_qm(*command, "--home", str(home), "--log-level", "loud", check=False)
    assert bad_level.code == 2 and "log level 'loud'" in bad_level.stderr
    (tmp_path / "a-folder").mkdir()
    bad_file = run_qm(
        *command, "--home", str(home), "--log-file", str(tmp_path / "a-folder"), check=False
    )
    assert bad_file.code == 2 and "--log-file" in bad_file.stderr
    assert not home.exists()  # nothing was made


@pytest.mark.e2e
def test_an_embedded_dp_that_cannot_enroll_is_logged_and_shown(tmp_path: Path) -> None:
    site = site_with_options(tmp_path, start=False)
    (site.home / "dp" / "enrollment.token").write_text("qme_not-the-right-token\n")
    site.start()
    try:
        status = wait_until(
            lambda: (
                (s := site.qm("site", "status", "--json").json())["embedded_dp"]["problem"] and s
            ),
            "the embedded DP's problem in qm site status",
        )
        text = site.qm("site", "status").stdout
        dps = site.qm("dp", "list", "--json").json()["dps"]
        ready = httpx.get(f"{site.url}/readyz", timeout=30)
        assert site.daemon.alive()  # the site serves on without its DP
    finally:
        site.stop()
    assert "enrollment" in status["embedded_dp"]["problem"].lower()
    assert "failed" in text and status["embedded_dp"]["problem"][:40] in text.replace("\n", "")
    assert [d["problem"] for d in dps if d["embedded"]] == [status["embedded_dp"]["problem"]]
    assert ready.status_code == 503 and ready.json()["embedded_dp"] == "failed"
    log = (tmp_path / "site-serve.log").read_text()
    assert "ERROR" in log and "the embedded DP failed" in log and "Traceback" in log
