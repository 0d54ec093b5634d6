"""Fixtures shared by every test folder.

The `site` fixture runs every end-to-end test twice: on the embedded SQLite database (the
default) and on PostgreSQL at 127.0.0.1:5432, each PostgreSQL run in a fresh database
`qm_t_<random>` that is dropped afterwards. The test id names the engine
(`test_x[sqlite]`, `test_x[postgresql]`); `-m "not postgresql"` runs the SQLite half only.
Set QM_TEST_POSTGRES to another maintenance-database URL to use another server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.e2e.processes import SiteServer, start_site

POSTGRES_ADMIN_URL = os.environ.get(
    "QM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "
            "or deselect these tests with -m 'not postgresql'",
            pytrace=False,
        )


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; its URL. Dropped (forcibly) afterwards."""
    from psycopg import sql

    name = f"qm_t_{secrets.token_hex(6)}"
    with _admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin_connection() as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def postgres_database() -> Callable[[], AbstractContextManager[str]]:
    """The factory itself, for tests that need a PostgreSQL database whatever `site` runs on."""
    return fresh_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """One fresh PostgreSQL database for this test."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded SQLite default, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def site(tmp_path: Path, database_url: str | None) -> Iterator[SiteServer]:
    """A real `qm site serve` on 127.0.0.1 with its embedded DP, on each database engine."""
    server = start_site(tmp_path, database=database_url)
    try:
        yield server
    finally:
        server.stop()
