"""Counters allocate IDs (packages, deployments, the trust log's sequence). Two site processes
on one database may take the first value of a counter at the same moment: both must get a
value, different ones, and neither may fail on the counter's primary key."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from quartermaster.site.db import Database, next_counter, read_counter
from quartermaster.site.models import Base


def test_a_counter_starts_at_its_start_and_counts_up(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/site.db")
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        assert next_counter(session, "package", start=100001) == 100001
        assert next_counter(session, "package", start=100001) == 100002
        assert next_counter(session, "other") == 1
    db.dispose()


@pytest.mark.postgresql
def test_two_transactions_taking_the_first_value_at_once_both_succeed(postgres_url: str) -> None:
    """The first transaction inserts the counter's row and holds it; the second, started
    before the first commits, waits for it and takes the next value."""
    db = Database(postgres_url)
    got: dict[str, int | BaseException] = {}
    first = db.sessions()
    first.begin()
    got["first"] = next_counter(first, "race")

    def second() -> None:
        try:
            with db.session() as session:
                got["second"] = next_counter(session, "race")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            got["second"] = exc

    waiting = threading.Thread(target=second)
    waiting.start()
    waiting.join(timeout=1.0)  # it blocks on the first's row: still running
    still_waiting = waiting.is_alive()
    first.commit()
    first.close()
    waiting.join(timeout=60)
    assert got == {"first": 1, "second": 2}
    assert still_waiting  # it did wait for the first transaction rather than fail
    with db.session() as session:
        assert read_counter(session, "race") == 2
    db.dispose()
