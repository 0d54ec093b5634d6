"""Fixtures shared by every test folder.

The `site` fixture runs a test on each engine: on the embedded SQLite database (the
default) and on PostgreSQL at 127.0.0.1:5432, each PostgreSQL run in a fresh database
`qm_t_<random>` that is dropped afterwards. The test id names the engine
(`test_x[sqlite]`, `test_x[postgresql]`); `-m "not postgresql"` runs the SQLite half only.
Set QM_TEST_POSTGRES to another maintenance-database URL to use another server.

An end-to-end flow whose subject is not the database runs once, `@ON_POSTGRESQL`: every
route already runs on SQLite in the fast tier (the API through TestClient) and in the
end-to-end tests that start a site on the default, so a second run of the same flow on
SQLite would cost a site and its processes for little those do not cover already. Flows where
the engine is part of the subject (the first deployment, backup and restore, what fuzzed or
hostile input does to each engine's types, two site processes on one database) run on both.

A site's database starts as a copy of one migrated per test process (a SQLite file, or a
PostgreSQL database used as `CREATE DATABASE ... TEMPLATE`): see tests/e2e/site_templates.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.e2e.processes import SiteServer, start_site

POSTGRES_ADMIN_URL = os.environ.get(
    "QM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ENGINES[1:], indirect=True)
ON_SQLITE = pytest.mark.parametrize("database_url", ENGINES[:1], indirect=True)


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc)
    pytest.fail(postgres_unreachable_message(reason), pytrace=False)  # not chained to exc


def postgres_unreachable_message(reason: str) -> str:
    """One line: what failed, and what to do on this machine."""
    reason = " ".join(reason.split())
    if "QM_TEST_POSTGRES" in os.environ:
        todo = "start that server or point QM_TEST_POSTGRES at one that runs"
    elif shutil.which("pg_ctlcluster") is None:
        todo = (
            "install the Debian package postgresql (apt-get install -y postgresql), "
            "or run scripts/test, which installs and starts it"
        )
    else:
        todo = (
            "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
            "main start`, or run scripts/test, which does"
        )
    return (
        f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({reason}): {todo}; "
        "or deselect these tests with -m 'not postgresql'"
    )


def _database_url(name: str) -> str:
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _create_database(name: str, template: str | None = None) -> None:
    from psycopg import sql

    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _admin_connection() as conn:
        conn.execute(create)


def _drop_database(name: str) -> None:
    from psycopg import sql

    with _admin_connection() as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


_postgres_template: list[str] = []  # the migrated template database of this process, once made


def _migrated_template() -> str:
    """A database at the newest migration, made on first use, dropped when the run ends."""
    if not _postgres_template:
        from quartermaster.site import db

        name = f"qm_tpl_{secrets.token_hex(6)}"
        _create_database(name)
        _postgres_template.append(name)
        db.upgrade(_database_url(name))
    return _postgres_template[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _postgres_template:
        _drop_database(_postgres_template.pop())


@contextmanager
def fresh_postgres_database(migrated: bool = False) -> Iterator[str]:
    """A new PostgreSQL database for one test; its URL. Dropped (forcibly) afterwards.
    Empty, or with `migrated` a copy of a database at the newest migration and nothing else
    (what `qm site init` makes of an empty one before it adds the site)."""
    name = f"qm_t_{secrets.token_hex(6)}"
    _create_database(name, _migrated_template() if migrated else None)
    try:
        yield _database_url(name)
    finally:
        _drop_database(name)


@pytest.fixture
def postgres_database() -> Callable[[], AbstractContextManager[str]]:
    """The factory itself, for tests that need a PostgreSQL database whatever `site` runs on."""
    return fresh_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """One fresh PostgreSQL database for this test, at the newest migration."""
    with fresh_postgres_database(migrated=True) as url:
        yield url


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded SQLite default, or the URL of a fresh PostgreSQL database at
    the newest migration."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database(migrated=True) as url:
        yield url


@pytest.fixture
def site(tmp_path: Path, database_url: str | None) -> Iterator[SiteServer]:
    """A real `qm site serve` on 127.0.0.1 with its embedded DP, on each database engine."""
    server = start_site(tmp_path, database=database_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site_whole_files(tmp_path: Path, database_url: str | None) -> Iterator[SiteServer]:
    """The `site` fixture, keeping every file whole (no chunks): for tests of how one large
    blob moves (resume at an offset, a .part file); chunked files: tests/e2e/test_chunked_*."""
    server = start_site(tmp_path, database=database_url, config={"chunk_threshold": 1 << 40})
    try:
        yield server
    finally:
        server.stop()
