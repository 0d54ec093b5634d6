"""Bad input to the API: bounded bodies (413 before a route reads them), one error shape,
no stack trace, nothing changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ON_POSTGRESQL
from tests.e2e.processes import SiteServer, run_qm

pytestmark = [pytest.mark.e2e, ON_POSTGRESQL]
MiB = 1024 * 1024


def _shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    error = body["error"]
    assert set(body) == {"error"} and set(error) == {"code", "message", "hint", "request_id"}
    assert error["request_id"] == response.headers["X-Request-ID"], body  # for the site's log
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def _admin(site: SiteServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"}


def test_bodies_are_bounded_whether_announced_or_streamed(site: SiteServer, tmp_path: Path) -> None:
    big = json.dumps({"name": "x" * (2 * MiB), "source": "/srv/src"}).encode()
    announced = httpx.post(
        f"{site.url}/api/v1/packages", content=big, headers=_admin(site), timeout=60
    )
    _shape(announced, 413, "payload_too_large")

    def stream() -> Iterator[bytes]:
        for _ in range(3 * 16):
            yield b" " * (64 * 1024)

    streamed = httpx.post(
        f"{site.url}/api/v1/packages", content=stream(), headers=_admin(site), timeout=60
    )
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    _shape(streamed, 413, "payload_too_large")
    assert site.qm("package", "list", "--json").json()["packages"] == []

    client = tmp_path / "client"
    run_qm("client", "register", "--home", str(client), "--site", site.url)
    secret = (client / "secret").read_text().strip()
    batch = {
        "messages": [
            {
                "uid": f"u{i}",
                "message_id": 10002,
                "time": "2026-11-25T00:00:00Z",
                "insertion_strings": ["x" * 1000],
            }
            for i in range(1001)
        ]
    }
    too_many = httpx.post(
        f"{site.url}/api/client/v1/status",
        json=batch,
        timeout=60,
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert len(too_many.request.content) > MiB  # over the default, within the batch limit
    _shape(too_many, 422, "invalid_input")  # judged on its content, not refused for size


def test_every_error_has_the_one_shape(site: SiteServer) -> None:
    headers = _admin(site)
    _shape(
        httpx.post(
            f"{site.url}/api/v1/packages", content=b"{not json", headers=headers, timeout=30
        ),
        422,
        "invalid_input",
    )
    _shape(
        httpx.post(
            f"{site.url}/api/v1/packages",
            json={"name": "x", "source": "/s", "surprise": 1},
            headers=headers,
            timeout=30,
        ),
        422,
        "invalid_input",
    )
    _shape(
        httpx.get(
            f"{site.url}/api/v1/packages",
            params={"offset": str(2**70)},
            headers=headers,
            timeout=30,
        ),
        422,
        "invalid_input",
    )
    _shape(
        httpx.get(f"{site.url}/api/v1/nothing-here", headers=headers, timeout=30), 404, "not_found"
    )
    _shape(
        httpx.delete(f"{site.url}/api/v1/packages", headers=headers, timeout=30),
        405,
        "method_not_allowed",
    )
    _shape(httpx.get(f"{site.url}/api/v1/packages", timeout=30), 401, "unauthorized")
