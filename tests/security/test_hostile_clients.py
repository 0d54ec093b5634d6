"""Strangers and enrolled clients sending what no agent sends, to a real `qm site serve`.

Registration is open to anyone who can reach the site, and a client's status messages are
its own words: whatever they send is answered in the one error shape (never 500), stays
small, and cannot break a list an administrator reads.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import SiteServer, run_qm, start_site

pytestmark = pytest.mark.e2e
REGISTER = "/api/client/v1/register"
STATUS = "/api/client/v1/status"
JSON = {"Content-Type": "application/json"}


def _register(site: SiteServer, **extra: Any) -> httpx.Response:
    return httpx.post(f"{site.url}{REGISTER}", json={"hostname": "pc", **extra}, timeout=30)


def _client_count(site: SiteServer) -> int:
    return len(site.api("GET", "/api/v1/clients", params={"limit": 1000})["clients"])


def _refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"], error
    assert error["code"] != "internal"


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def _keys(count: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(count)}


def test_hostile_registrations_are_refused_naming_the_limit_and_lists_still_work(
    site: SiteServer,
) -> None:
    before = _client_count(site)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"properties": _nested(500)}, "nesting deeper than 3 levels"),
        ({"properties": {"x": "y" * 900_000}}, "text longer than 1024 characters"),
        ({"properties": {"a": _keys(150), "b": _keys(150)}}, "more than 200 keys"),
        ({"properties": {f"k{i}": "v" * 1000 for i in range(20)}}, "more than 16384 bytes"),
        ({"properties": {"n": 2**70}}, "outside 64 bits"),
        ({"properties": {"s": "a\u0000b"}}, "NUL"),
        ({"hostname": "lab\u0000-01"}, "without NUL"),
    ]
    for body, words in cases:
        _refused(_register(site, **body), 422, words)
    for raw in (b'{"hostname": "\xff\xfe"}', b'{"hostname": "a", "properties": ' + b"[" * 5000):
        answer = httpx.post(f"{site.url}{REGISTER}", content=raw, headers=JSON, timeout=30)
        _refused(answer, 422, "not JSON that can be read")
    fine = _register(site, properties={"department": "lab", "tags": ["a", "b"], "n": 3})
    assert fine.status_code == 201, fine.text

    assert _client_count(site) == before + 1
    listed = run_qm("client", "list", "--json", env=site.env).json()
    assert [c["properties"] for c in listed["clients"] if c["properties"]] == [
        {"department": "lab", "tags": ["a", "b"], "n": 3}
    ]


def test_bad_status_values_are_refused_or_clamped_never_a_server_error(
    site: SiteServer,
) -> None:
    secret = _register(site).json()["client_secret"]
    auth = {"Authorization": f"Bearer {secret}"}

    def send(uid: str, **fields: Any) -> httpx.Response:
        message = {"uid": uid, "message_id": 10002, "time": "2026-01-01T00:00:00Z", **fields}
        return httpx.post(
            f"{site.url}{STATUS}", json={"messages": [message]}, headers=auth, timeout=30
        )

    _refused(send("uid-object-1", deployment_id={"a": 1}), 422, "deployment_id")
    _refused(send("uid-object-2", package_id=["x"]), 422, "package_id")
    _refused(send("uid-deep-001", properties=_nested(50)), 422, "nesting deeper")
    for uid, when in (
        ("uid-year-0001", "0001-01-01T00:00:00+14:00"),
        ("uid-year-9999", "9999-12-31T23:59:59Z"),
    ):
        answer = send(uid, time=when)
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    rows = site.api("GET", "/api/v1/status-messages", params={"limit": 1000})["messages"]
    clamped = {
        m["properties"].get("client_time"): m["time"] for m in rows if m["message_id"] == 10002
    }
    assert set(clamped) == {"0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"}, clamped
    assert all(not time.startswith(("0001", "9999", "0000")) for time in clamped.values())


def test_registration_is_rate_limited_per_address(tmp_path: Path) -> None:
    site = start_site(tmp_path, config={"registrations_per_minute": 5})
    try:
        answers = [_register(site).status_code for _ in range(12)]
        assert answers[:5] == [201] * 5, answers
        assert 429 in answers[5:], answers
        refused = _register(site)
        _refused(refused, 429, "at most 5 a minute")
        assert "try again in" in refused.json()["error"]["hint"]
        assert _client_count(site) == answers.count(201)
    finally:
        site.stop()


def test_a_stored_value_beyond_the_limits_does_not_break_the_lists(tmp_path: Path) -> None:
    """Properties stored before the limits existed (written here straight into SQLite)."""
    site = start_site(tmp_path)
    try:
        client_id = _register(site).json()["client_id"]
        deep = json.dumps({"p": _nested(500)})
        with sqlite3.connect(site.home / "site.db") as db:
            db.execute("UPDATE clients SET properties = ? WHERE client_id = ?", (deep, client_id))
        [listed] = site.api("GET", "/api/v1/clients")["clients"]
        assert "nesting deeper" in listed["properties"]["unreadable"]
        shown = run_qm("client", "list", env=site.env)
        assert shown.code == 0 and "pc" in shown.stdout
    finally:
        site.stop()
