"""Console sessions end when they should, and a copy of the database mints none.

Before, the cookie was signed with a key in `site_settings`: a saved cookie kept working
for 12 h after sign-out, and anyone who could read site.db forged an admin session. Each
attack goes through a real `qm site serve`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import SiteServer
from tests.security.console_login import COOKIE, PASSWORD, csrf, sign_in, site_with_password

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    server = site_with_password(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _signed_in(site: SiteServer, cookie: str) -> bool:
    """Does this cookie, replayed by someone else, open a page that needs a session?"""
    with httpx.Client(base_url=site.url, cookies={COOKIE: cookie}, timeout=30) as other:
        return other.get("/console/").status_code == 200


def test_a_cookie_saved_before_sign_out_is_worthless_after_it(site: SiteServer) -> None:
    browser = sign_in(site)
    saved = browser.cookies[COOKIE]
    assert _signed_in(site, saved)
    page = browser.get("/console/")
    assert (
        browser.post("/console/sign-out", data={"csrf_token": csrf(page.text)}).status_code == 303
    )
    assert not _signed_in(site, saved)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/accounts/olga/password", {"password": "another long pass phrase"}),
        ("/api/v1/accounts/olga/role", {"role": "viewer"}),
        ("/api/v1/accounts/olga/disable", None),
    ],
)
def test_password_role_and_disable_end_the_accounts_sessions(
    site: SiteServer, path: str, body: dict[str, str] | None
) -> None:
    site.api(
        "POST", "/api/v1/accounts", json={"name": "olga", "role": "operator", "password": PASSWORD}
    )
    saved = [sign_in(site, "olga").cookies[COOKIE] for _ in range(2)]  # two browsers
    admin = sign_in(site).cookies[COOKIE]
    site.api("POST", path, json=body)
    assert not any(_signed_in(site, cookie) for cookie in saved)
    assert _signed_in(site, admin)  # another account's session goes on


def test_a_copy_of_the_database_mints_no_session(site: SiteServer, tmp_path: Path) -> None:
    cookie = sign_in(site).cookies[COOKIE]
    stolen = [site.home / name for name in ("site.db", "site.db-wal")]
    raw = b"".join(p.read_bytes() for p in stolen if p.exists())
    assert cookie.encode() not in raw
    copy = tmp_path / "stolen.db"
    copy.write_bytes((site.home / "site.db").read_bytes())
    if (site.home / "site.db-wal").exists():
        (tmp_path / "stolen.db-wal").write_bytes((site.home / "site.db-wal").read_bytes())
    with sqlite3.connect(copy) as db:
        settings = dict(db.execute("SELECT name, value FROM site_settings").fetchall())
        stored = [row[0] for row in db.execute("SELECT token_hash FROM console_sessions")]
        account_id = db.execute("SELECT id FROM accounts WHERE name = 'admin'").fetchone()[0]
    assert not [name for name in settings if name.startswith("console")]
    assert stored == [hashlib.sha256(cookie.encode()).hexdigest()]
    assert not _signed_in(site, stored[0])  # the stored value is no cookie
    # The old way: sign a session payload with a key found in the database.
    payload = base64.urlsafe_b64encode(
        json.dumps({"s": "x", "a": account_id, "t": int(time.time()), "p": None}).encode()
    ).rstrip(b"=")
    for key in [*settings.values(), *stored]:
        mac = hmac.new(str(key).strip('"').encode(), b"session\n" + payload, hashlib.sha256)
        forged = (
            f"{payload.decode()}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"
        )
        assert not _signed_in(site, forged)
