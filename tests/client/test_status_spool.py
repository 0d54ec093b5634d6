"""The status spool: durable until the site acknowledges, delivered in batches of 1000."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from quartermaster.client import status_spool
from quartermaster.client.site_link import SiteUnreachable
from quartermaster.client.status_spool import SYNC_ONE_BY_ONE, StatusSpool
from quartermaster.core.component_log import ComponentLog

from .conftest import FrozenClock


def make_spool(tmp_path: Path) -> StatusSpool:
    return StatusSpool(tmp_path / "spool", FrozenClock(), ComponentLog(tmp_path, "test"))


def test_a_message_is_a_file_with_protocol_fields_before_any_delivery(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    spool.add(
        10008,
        ["QM120000", "QM100001", "Install", 0],
        deployment_id="QM120000",
        package_id="QM100001",
        properties={"exit_code": 0},
    )
    [(path, message)] = spool.pending()
    assert path.parent == tmp_path / "spool"
    assert re.fullmatch(r"[0-9a-f]{32}", message["uid"])
    assert message["time"] == "2026-11-25T12:00:00.000Z"
    assert message["insertion_strings"] == ["QM120000", "QM100001", "Install", "0"]
    assert (message["component"], message["severity"]) == ("ExecutionManager", "informational")
    assert message["properties"] == {"exit_code": 0}


def test_delivered_messages_are_deleted_in_batches_of_at_most_1000(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    for n in range(1001):
        spool.add(10061, [f"reason {n}"])
    batches: list[list[dict[str, Any]]] = []
    assert spool.deliver(batches.append) == 1001
    assert [len(b) for b in batches] == [1000, 1]
    assert batches[0][0]["insertion_strings"] == ["reason 0"]  # oldest first
    assert spool.pending() == []


def test_a_failed_delivery_keeps_every_unacknowledged_message(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    spool.add(10061, ["one"])
    spool.add(10061, ["two"])

    def unreachable(_: list[dict[str, Any]]) -> None:
        raise SiteUnreachable("cannot reach the site")

    with pytest.raises(SiteUnreachable):
        spool.deliver(unreachable)
    assert [m["insertion_strings"] for _, m in spool.pending()] == [["one"], ["two"]]


def test_an_unreadable_spool_file_is_set_aside_not_sent(tmp_path: Path) -> None:
    spool = make_spool(tmp_path)
    spool.add(10061, ["good"])
    (tmp_path / "spool" / "0-broken.json").write_text("{not json")
    sent: list[dict[str, Any]] = []
    spool.deliver(sent.extend)
    assert [m["insertion_strings"] for m in sent] == [["good"]]
    assert (tmp_path / "spool" / "0-broken.bad").exists()


def test_deferred_messages_become_visible_together_and_only_once_made_durable(
    tmp_path: Path,
) -> None:
    spool = make_spool(tmp_path)
    with spool.deferred():
        for n in range(3):
            spool.add(1001, ["QM120000", "QM100001", "Install", f"app {n}", "installed"])
        assert spool.pending() == [], "a message not yet durable must not be deliverable"
        spool.flush()  # what the agent does before a program starts
        assert len(spool.pending()) == 3
        spool.add(1001, ["QM120001", "QM100001", "Install", "app 3", "installed"])
        assert len(spool.pending()) == 3
    messages = [m for _, m in spool.pending()]
    assert [m["insertion_strings"][3] for m in messages] == [f"app {n}" for n in range(4)]
    assert not list((tmp_path / "spool").glob(".*.part"))
    assert all(p.stat().st_mode & 0o077 == 0 for p, _ in spool.pending()[:3])


@pytest.mark.parametrize("count", [3, SYNC_ONE_BY_ONE + 1])
def test_a_few_deferred_messages_are_fsynced_and_many_take_one_syncfs(
    tmp_path: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's few messages are fsynced one by one: a syncfs would also write back the
    gigabyte the run just put in the cache before its program may start."""
    calls: list[str] = []
    real_fsync, real_syncfs = status_spool.fsync_path, status_spool.sync_file_system

    def fsync(path: Path) -> None:
        calls.append("folder" if path.is_dir() else "file")
        real_fsync(path)

    def syncfs(folder: Path) -> None:
        calls.append("syncfs")
        real_syncfs(folder)

    monkeypatch.setattr(status_spool, "fsync_path", fsync)
    monkeypatch.setattr(status_spool, "sync_file_system", syncfs)
    spool = make_spool(tmp_path)
    with spool.deferred():
        for n in range(count):
            spool.add(1001, ["QM120000", "QM100001", "Install", f"app {n}", "installed"])
    if count > SYNC_ONE_BY_ONE:
        assert calls == ["syncfs", "folder"]
    else:
        assert calls == ["file"] * count + ["folder"]
    assert len(spool.pending()) == count
