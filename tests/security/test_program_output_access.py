"""A failed program's output at the site: kept within its caps, and shown only to readers.

The client sends the tail with its failure message; the site clips it to the per-message
cap, deletes the oldest outputs beyond the total cap (the messages stay), and shows it to
accounts that may read status messages: not to a stranger, and a client cannot read it back.
"""

from __future__ import annotations

import uuid
from typing import Any

from quartermaster.site.models import StatusMessageRow
from quartermaster.site.status.program_output import output_for_message
from tests.security.conftest import SiteApi, bearer


def failure(output: Any, n: int = 0) -> dict[str, Any]:
    return {
        "uid": uuid.uuid4().hex,
        "message_id": 10006,
        "time": f"2026-11-25T12:{n // 60:02d}:{n % 60:02d}Z",
        "deployment_id": "QM120000",
        "package_id": "QM100001",
        "insertion_strings": ["QM120000", "QM100001", "Install", "3"],
        "properties": {"exit_code": 3, "source_version": 1},
        "output_tail": output,
    }


def send(site: SiteApi, secret: str, messages: list[dict[str, Any]]) -> Any:
    return site.http.post(
        "/api/client/v1/status", headers=bearer(secret), json={"messages": messages}
    )


def test_output_is_clipped_to_the_message_cap_keeping_its_end(site_api: SiteApi) -> None:
    _, secret, _ = site_api.register_client()
    site_api.ok("POST", "/api/v1/settings", json={"program_output_message_bytes": 1024})
    text = "".join(f"line {i:05d} é\n" for i in range(2000)) + "fatal: disk full\n"
    assert send(site_api, secret, [failure(text)]).status_code == 200
    [message] = site_api.ok("GET", "/api/v1/status-messages?message_id=10006", "viewer")["messages"]
    kept = message["output_tail"]
    assert kept.endswith("line 01999 é\nfatal: disk full\n")
    assert len(kept.encode()) <= 1024 and message["output_truncated"] is True
    assert text.endswith(kept)


def test_the_oldest_outputs_go_first_beyond_the_total_cap_and_messages_stay(
    site_api: SiteApi,
) -> None:
    _, secret, _ = site_api.register_client()
    site_api.ok("POST", "/api/v1/settings", json={"program_output_total_bytes": 1024 * 1024})
    chunk = 60 * 1024
    for n in range(20):  # 1.2 MB in all: the first few outputs must go
        body = [failure(f"run {n:02d}\n" + "x" * (chunk - 7), n)]
        assert send(site_api, secret, body).status_code == 200
    shown = site_api.ok("GET", "/api/v1/status-messages?message_id=10006&limit=100")["messages"]
    assert len(shown) == 20
    kept = {m["output_tail"][:6] for m in shown if m["output_tail"]}
    removed = [m for m in shown if m["output_removed"]]
    assert kept == {f"run {n:02d}" for n in range(20 - len(kept), 20)}
    assert len(kept) * chunk <= 1024 * 1024 < (len(kept) + 1) * chunk
    assert all(m["output_tail"] is None for m in removed) and len(removed) == 20 - len(kept)
    with site_api.ctx.db.session() as session:  # the service the console uses
        oldest = min(session.query(StatusMessageRow.id).filter_by(message_id=10006))[0]
        assert output_for_message(session, oldest) == {
            "output_tail": None,
            "output_truncated": False,
            "output_removed": True,
        }
        newest = max(session.query(StatusMessageRow.id).filter_by(message_id=10006))[0]
        newest_output = output_for_message(session, newest)
        assert newest_output is not None and newest_output["output_tail"].startswith("run 19")


def test_bad_output_is_refused_whole_and_nothing_of_the_batch_is_stored(
    site_api: SiteApi,
) -> None:
    _, secret, _ = site_api.register_client()
    answer = send(site_api, secret, [failure("fine"), failure({"not": "text"})])
    assert answer.status_code == 422
    assert "output_tail must be a string" in answer.json()["error"]["message"]
    assert site_api.ok("GET", "/api/v1/status-messages?message_id=10006")["messages"] == []


def test_who_may_read_output_and_change_its_caps(site_api: SiteApi) -> None:
    _, secret, _ = site_api.register_client()
    assert send(site_api, secret, [failure("password-free output\n")]).status_code == 200
    path = "/api/v1/status-messages?message_id=10006"
    assert site_api.call("GET", path, role=None).status_code == 401  # a stranger
    assert site_api.http.get(path, headers=bearer(secret)).status_code in (401, 403)  # a client
    viewer = site_api.ok("GET", path, "viewer")["messages"]
    assert viewer[0]["output_tail"] == "password-free output\n"
    for role in ("viewer", "operator"):
        refused = site_api.call(
            "POST", "/api/v1/settings", role, json={"program_output_total_bytes": 2**20}
        )
        assert refused.status_code == 403
    too_small = site_api.call("POST", "/api/v1/settings", json={"program_output_message_bytes": 5})
    assert too_small.status_code == 422
