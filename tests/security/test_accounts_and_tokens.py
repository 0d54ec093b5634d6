"""Accounts (argon2id passwords, roles, disabling) and API tokens (hashed, shown once,
revocable, expiring, acting as their account)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from quartermaster.core.errors import InvalidInput, Unauthorized
from quartermaster.site import db
from quartermaster.site.identity.accounts import authenticate_password, create_account, set_disabled
from quartermaster.site.models import Account, ApiToken
from quartermaster.site.setup import init_site
from tests.security.conftest import SiteApi, bearer

PASSWORD = "correct horse battery staple"


def _database_bytes(site: SiteApi) -> bytes:
    return b"".join(p.read_bytes() for p in site.root.glob("site.db*"))


def _status(site: SiteApi, token: str, path: str = "/api/v1/me") -> tuple[int, str]:
    response = site.http.get(path, headers=bearer(token))
    return response.status_code, response.json().get("error", {}).get("message", "")


def test_a_token_is_shown_once_and_only_its_sha256_is_stored(site_api: SiteApi) -> None:
    answer = site_api.ok("POST", "/api/v1/tokens", json={"account": "olga", "name": "ci"})
    token = answer["token"]
    with site_api.ctx.db.session() as session:
        row = session.get(ApiToken, answer["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in _database_bytes(site_api)
    listed = site_api.ok("GET", "/api/v1/tokens", params={"account": "olga"})["tokens"]
    assert [t["name"] for t in listed] == ["", "ci"] and all("token" not in t for t in listed)
    assert site_api.ok("GET", "/api/v1/me", "operator")["account"] == "olga"


def test_a_revoked_token_stops_working_and_others_keep_working(site_api: SiteApi) -> None:
    first = site_api.ok("POST", "/api/v1/tokens", json={"account": "olga"})
    second = site_api.ok("POST", "/api/v1/tokens", json={"account": "olga"})
    assert _status(site_api, first["token"])[0] == 200

    revoked = site_api.ok("POST", f"/api/v1/tokens/{first['id']}/revoke")

    assert revoked["state"] == "revoked"
    assert _status(site_api, first["token"]) == (401, f"API token {first['id']} was revoked")
    assert _status(site_api, second["token"])[0] == 200


def test_a_token_stops_working_when_it_expires(site_api: SiteApi) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = site_api.ok("POST", "/api/v1/tokens", json={"account": "olga", "expires": expires})
    assert _status(site_api, answer["token"])[0] == 200
    with site_api.ctx.db.session() as session:  # an hour passes
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == answer["id"])
            .values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )

    assert _status(site_api, answer["token"]) == (401, f"API token {answer['id']} expired")
    listed = site_api.ok("GET", "/api/v1/tokens", params={"account": "olga"})["tokens"]
    assert [t["state"] for t in listed if t["id"] == answer["id"]] == ["expired"]


@pytest.mark.parametrize(
    "expires", ["2020-01-01T00:00:00Z", "2026-12-01T00:00:00", "2999-01-01T00:00:00Z"]
)
def test_a_token_expiry_must_be_in_the_next_ten_years_with_a_zone(
    site_api: SiteApi, expires: str
) -> None:
    response = site_api.call("POST", "/api/v1/tokens", json={"expires": expires})
    assert response.status_code == 422, response.text


def test_a_disabled_account_loses_every_token_until_enabled(site_api: SiteApi) -> None:
    operator = site_api.tokens["operator"]
    site_api.ok("POST", "/api/v1/accounts/olga/disable")
    assert _status(site_api, operator) == (401, "account 'olga' is disabled")
    site_api.ok("POST", "/api/v1/accounts/olga/enable")
    assert _status(site_api, operator)[0] == 200


def test_a_role_change_applies_to_existing_tokens_at_once(site_api: SiteApi) -> None:
    body = {"name": "c1"}
    assert site_api.call("POST", "/api/v1/collections", "operator", json=body).status_code == 201
    site_api.ok("POST", "/api/v1/accounts/olga/role", json={"role": "viewer"})
    assert (
        site_api.call("POST", "/api/v1/collections", "operator", json={"name": "c2"}).status_code
        == 403
    )
    assert site_api.ok("GET", "/api/v1/me", "operator")["role"] == "viewer"


def test_operators_manage_their_own_tokens_only(site_api: SiteApi) -> None:
    own = site_api.ok("POST", "/api/v1/tokens", "operator", json={})
    assert own["account"] == "olga"
    assert (
        site_api.call("POST", "/api/v1/tokens", "operator", json={"account": "admin"}).status_code
        == 403
    )
    admin_token = site_api.ok("GET", "/api/v1/tokens", "admin", params={"account": "admin"})[
        "tokens"
    ][0]
    assert (
        site_api.call("POST", f"/api/v1/tokens/{admin_token['id']}/revoke", "operator").status_code
        == 403
    )
    assert (
        site_api.call("GET", "/api/v1/tokens", "operator", params={"account": "admin"}).status_code
        == 403
    )
    mine = site_api.ok("GET", "/api/v1/tokens", "operator")["tokens"]
    assert {t["account"] for t in mine} == {"olga"} and len(mine) == 2
    site_api.ok("POST", f"/api/v1/tokens/{own['id']}/revoke", "operator")
    assert _status(site_api, own["token"])[0] == 401
    everyone = site_api.ok("GET", "/api/v1/tokens")["tokens"]
    assert {t["account"] for t in everyone} == {"admin", "olga", "victor"}


def test_viewers_read_their_own_tokens_but_create_none(site_api: SiteApi) -> None:
    assert site_api.call("POST", "/api/v1/tokens", "viewer", json={}).status_code == 403
    mine = site_api.ok("GET", "/api/v1/tokens", "viewer")["tokens"]
    assert [t["account"] for t in mine] == ["victor"]


def test_passwords_are_argon2id_and_checked_by_authenticate_password(site_api: SiteApi) -> None:
    site_api.ok(
        "POST", "/api/v1/accounts", json={"name": "alice", "role": "viewer", "password": PASSWORD}
    )
    with site_api.ctx.db.session() as session:
        stored = session.scalar(select(Account.password_hash).where(Account.name == "alice"))
        assert stored is not None and stored.startswith("$argon2id$")
        assert authenticate_password(session, "alice", PASSWORD).name == "alice"
        for name, password in [
            ("alice", PASSWORD + "!"),
            ("nobody", PASSWORD),
            ("olga", PASSWORD),
        ]:  # olga has no password at all
            with pytest.raises(Unauthorized):
                authenticate_password(session, name, password)
        set_disabled(session, "alice", True)
        with pytest.raises(Unauthorized):
            authenticate_password(session, "alice", PASSWORD)
    assert PASSWORD.encode() not in _database_bytes(site_api)
    audit = site_api.ok("GET", "/api/v1/audit", params={"action": "account.create"})["entries"]
    assert audit[0]["details"]["request"]["password"] == "[redacted]"


def test_a_password_is_twelve_characters_or_more(site_api: SiteApi) -> None:
    response = site_api.call("POST", "/api/v1/accounts/olga/password", json={"password": "short"})
    assert response.status_code == 422
    site_api.ok("POST", "/api/v1/accounts/olga/password", json={"password": PASSWORD})
    with site_api.ctx.db.session() as session:
        assert authenticate_password(session, "olga", PASSWORD).role == "operator"


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(site_api: SiteApi) -> None:
    for path, body in [
        ("/api/v1/accounts/admin/disable", None),
        ("/api/v1/accounts/admin/role", {"role": "operator"}),
    ]:
        response = site_api.call("POST", path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (409, "conflict")
    site_api.ok("POST", "/api/v1/accounts/olga/role", json={"role": "admin"})
    site_api.ok("POST", "/api/v1/accounts/admin/disable", "operator")  # olga is admin now
    assert _status(site_api, site_api.tokens["admin"])[0] == 401


@pytest.mark.parametrize("name", ["Alice", "", "a b", "x" * 65, "../etc"])
def test_account_names_are_checked(site_api: SiteApi, name: str) -> None:
    response = site_api.call("POST", "/api/v1/accounts", json={"name": name, "role": "viewer"})
    assert response.status_code == 422


def test_site_init_makes_the_admin_account_own_admin_token_with_the_password(
    tmp_path: Path,
) -> None:
    home = init_site(tmp_path / "site", "QM1", "init test", admin_password=PASSWORD)
    database = db.Database(db.sqlite_url(home.database_path))
    try:
        with database.session() as session:
            admin = authenticate_password(session, "admin", PASSWORD)
            token = session.scalar(select(ApiToken).where(ApiToken.account_id == admin.id))
            assert admin.role == "admin" and token is not None
            secret = home.admin_token_path.read_text().strip()
            assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
            with pytest.raises(InvalidInput):
                create_account(session, "second", "superuser")
    finally:
        database.dispose()


def test_site_init_refuses_a_short_admin_password_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        init_site(tmp_path / "site", "QM1", "init test", admin_password="short")
    assert not (tmp_path / "site").exists()
