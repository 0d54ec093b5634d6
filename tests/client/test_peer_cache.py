"""The client's side of the peer cache without a site: what it reports, what the site's
answer does to it, and how a withdrawn peer re-validates its cache."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quartermaster.client.cache import ContentCache, Slice
from quartermaster.client.peer_server import (
    FairSlots,
    PeerCache,
    VerifiedBlobs,
    on_battery,
    parse_listen,
)
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.errors import InvalidInput
from tests.e2e.processes import wait_until

GOOD = b"good bytes"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
ROTTEN_SHA = hashlib.sha256(b"what it was").hexdigest()


def put(cache: ContentCache, sha: str, data: bytes) -> None:
    path = cache.blob_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[PeerCache]:
    cache = ContentCache(tmp_path / "cache", 10**9)
    peer = PeerCache(tmp_path, cache, ("127.0.0.1", 0), ComponentLog(tmp_path / "logs", "peer"))
    yield peer
    peer.server.server_close()


def test_it_reports_only_versions_whose_every_blob_is_cached(peers: PeerCache) -> None:
    put(peers.cache, GOOD_SHA, GOOD)
    peers.holding("a" * 64, [GOOD_SHA])
    peers.holding("b" * 64, [GOOD_SHA, ROTTEN_SHA])  # one blob since evicted
    sent: list[dict[str, Any]] = []

    def site(body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return {"serve": True, "boundary": "10.1.2.0/24", "reason": "", "revalidate": False}

    peers.report(site, {})
    assert sent[0]["holds"] == ["a" * 64] and sent[0]["port"] == peers.port
    # what it holds says what is installed: for this account only
    assert (peers.home / "peer-holdings.json").stat().st_mode & 0o777 == 0o600
    assert peers.state.serve and peers.state.boundary == "10.1.2.0/24"


def test_metered_is_reported_and_the_site_says_do_not_serve(
    peers: PeerCache, tmp_path: Path
) -> None:
    (tmp_path / "metered").touch()
    sent: list[dict[str, Any]] = []

    def site(body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return {"serve": False, "boundary": "10.1.2.0/24", "reason": "metered"}

    peers.state.serve = True
    peers.report(site, {})
    assert sent[0]["metered"] is True and peers.state.serve is False


def test_a_withdrawn_peer_rehashes_its_cache_and_drops_what_rotted(peers: PeerCache) -> None:
    put(peers.cache, GOOD_SHA, GOOD)
    put(peers.cache, ROTTEN_SHA, b"what it is now")
    peers.verified.record(ROTTEN_SHA)  # verified once; the disk changed it since
    answers = iter(
        [
            {"serve": False, "boundary": "10.1.2.0/24", "revalidate": True},
            {"serve": True, "boundary": "10.1.2.0/24", "revalidate": False},
        ]
    )
    sent: list[dict[str, Any]] = []

    def site(body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return next(answers)

    peers.report(site, {})
    assert [b["revalidated"] for b in sent] == [False, True]
    assert not peers.cache.has(ROTTEN_SHA) and peers.cache.has(GOOD_SHA)
    assert peers.state.serve


def test_a_blob_changed_since_it_was_verified_is_hashed_again(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path / "cache", 10**9)
    put(cache, GOOD_SHA, GOOD)
    verified = VerifiedBlobs(cache)
    assert verified.check(GOOD_SHA) == Slice(cache.blob_path(GOOD_SHA), 0, len(GOOD), GOOD_SHA)
    cache.blob_path(GOOD_SHA).write_bytes(b"other bytes")
    assert verified.check(GOOD_SHA) is None


def test_listen_addresses_and_battery(tmp_path: Path) -> None:
    assert parse_listen("10.1.2.3:8450") == ("10.1.2.3", 8450)
    assert parse_listen("[::1]:8450") == ("::1", 8450)
    for wrong in ("10.1.2.3", ":8450", "host:0", "host:99999"):
        with pytest.raises(InvalidInput):
            parse_listen(wrong)
    battery = tmp_path / "power" / "BAT0"
    battery.mkdir(parents=True)
    (battery / "type").write_text("Battery\n")
    (battery / "status").write_text("Charging\n")
    assert on_battery(tmp_path / "power") is False
    (battery / "status").write_text("Discharging\n")
    assert on_battery(tmp_path / "power") is True


def test_transfer_slots_go_to_waiting_requests_in_the_order_they_came() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    order: list[int] = []
    started: list[threading.Thread] = []

    def served(index: int) -> None:
        if slots.acquire(timeout=10):
            order.append(index)

    for index in range(3):
        thread = threading.Thread(target=served, args=(index,))
        thread.start()
        started.append(thread)
        wait_until(lambda n=index + 1: len(slots._queue) == n, "the request waits", 5)
    for _ in range(3):
        before = len(order)
        slots.release()  # handed to the first waiter, never to a request arriving now
        assert not slots.acquire(timeout=0)
        wait_until(lambda b=before: len(order) == b + 1, "the next waiter served", 5)
    for thread in started:
        thread.join()
    assert order == [0, 1, 2]


def test_a_request_that_waited_too_long_gives_its_place_up() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0.05)
    slots.release()
    assert slots.acquire(timeout=0)  # the slot was freed, not handed to the one that left
