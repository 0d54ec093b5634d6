"""Migration 0003 (identity): a site made before accounts keeps its admin token working, as a
token of a new `admin` account; downgrading and upgrading again round-trips."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from quartermaster.core.errors import Unauthorized
from quartermaster.site import db
from quartermaster.site.identity.accounts import authenticate_token
from tests.conftest import ENGINES, fresh_postgres_database

OLD_ADMIN, OLD_VIEWER = "qma_old-admin-token", "qma_old-viewer-token"


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield db.sqlite_url(tmp_path / "site.db")
        return
    with fresh_postgres_database() as url:
        yield url


def _before_identity() -> str:
    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    before = script.get_revision("0003").down_revision
    assert isinstance(before, str)
    return before


def _insert_old_tokens(database: db.Database) -> None:
    with database.session() as session:
        for name, token, role in [("admin", OLD_ADMIN, "admin"), ("view", OLD_VIEWER, "viewer")]:
            session.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, role, created, revoked) "
                    "VALUES (:n, :h, :r, :c, false)"
                ),
                {
                    "n": name,
                    "h": hashlib.sha256(token.encode()).hexdigest(),
                    "r": role,
                    "c": datetime.now(UTC),
                },
            )


def test_old_tokens_become_tokens_of_an_admin_account(database_url: str) -> None:
    config = db.alembic_config(database_url)
    command.upgrade(config, _before_identity())
    database = db.Database(database_url)
    try:
        _insert_old_tokens(database)
        command.upgrade(config, "head")
        with database.session() as session:
            principal = authenticate_token(session, OLD_ADMIN)
            assert (principal.name, principal.role) == ("admin", "admin")
            with pytest.raises(Unauthorized, match="revoked"):  # never promoted to admin
                authenticate_token(session, OLD_VIEWER)

        command.downgrade(config, _before_identity())
        with database.session() as session:
            rows = session.execute(text("SELECT name, role, revoked FROM api_tokens")).all()
        assert sorted((n, r, bool(v)) for n, r, v in rows) == [
            ("admin", "admin", False),
            ("view", "admin", True),
        ]

        command.upgrade(config, "head")
        with database.session() as session:
            assert authenticate_token(session, OLD_ADMIN).role == "admin"
    finally:
        database.dispose()


def test_a_database_without_tokens_gets_no_account(database_url: str) -> None:
    command.upgrade(db.alembic_config(database_url), "head")
    database = db.Database(database_url)
    try:
        with database.session() as session:
            assert session.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0
    finally:
        database.dispose()
