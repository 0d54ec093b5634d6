"""Site database: engine set-up for SQLite (embedded default) and PostgreSQL, and migrations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from quartermaster.core.errors import InvalidInput
from quartermaster.site.models import Counter

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def normalize_url(url: str) -> str:
    """Accept the URLs administrators write (postgresql://) and pick the installed driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise InvalidInput(
        f"database URL {url!r} is not supported",
        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
    )


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        return engine
    # No pre-ping: it is one more round trip per transaction. A connection the server closed
    # (a PostgreSQL restart) fails one request with 500, which clients retry; SQLAlchemy then
    # invalidates the whole pool, so the retry gets a fresh connection.
    # The pool holds as many connections as requests run at once (the worker threads), and
    # hands out the most recently used: a connection returned to a full pool is closed, and
    # with a small first-in-first-out pool a busy site opened a new PostgreSQL backend (a
    # process) every few requests.
    return create_engine(url, pool_size=32, max_overflow=8, pool_use_lifo=True, pool_recycle=3600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _refuse_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
) -> None:
    """SQLite stores text with a NUL character, which PostgreSQL refuses and which would cut
    a name short wherever it is shown: refuse it on SQLite too (answered 422, DataError)."""
    rows = parameters if isinstance(parameters, list | tuple) else [parameters]
    for row in rows:
        values: Iterable[Any]
        if isinstance(row, dict):
            values = row.values()
        elif isinstance(row, list | tuple):
            values = row
        else:
            values = (row,)
        if any(isinstance(value, str) and "\x00" in value for value in values):
            raise DataError(statement, row, ValueError("text with a NUL character"))


def alembic_config(url: str) -> Config:
    # Alembic (with Mako and Pygments) is imported only where the schema is migrated or
    # checked: a site that serves needs neither (about 0.1 s of CPU at every start).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration (used by init and `qm site upgrade`)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def next_counter(session: Session, name: str, start: int = 1) -> int:
    """Allocate the next value of a named counter inside the caller's transaction.

    A counter's first use inserts its row with ON CONFLICT DO NOTHING and then increments it
    like any other: two site processes allocating the first value at once both succeed (one
    waits for the other's row) instead of one failing on the primary key."""
    increment = (
        update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    result = session.execute(increment).scalar_one_or_none()
    if result is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(Counter)
            .values(name=name, value=start - 1)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        result = session.execute(increment).scalar_one()
    return int(result)


def read_counter(session: Session, name: str) -> int:
    value = session.execute(text("SELECT value FROM counters WHERE name = :n"), {"n": name})
    return int(value.scalar_one_or_none() or 0)
