"""Download limits from policy: a schedule change during a transfer takes effect, no byte lost.

Only the effect is checked, never a speed (a timing assertion would be flaky): the achieved
rate against the cap is a benchmark row (bench/bandwidth.py).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from quartermaster.core.bandwidth import BandwidthLimit
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import sha256_bytes

from .conftest import START, ClientWorld, deployment_entry
from .servers import StoreServer, write_store

WEDNESDAY_NOON = START  # 2026-11-25 12:00 UTC
PAUSED_HOUR = {"days": "mon-sun", "from": "13:00", "to": "14:00", "rate": 0}


def test_the_rate_follows_the_schedule_including_past_midnight() -> None:
    limit = BandwidthLimit.from_dict(
        {
            "rate": None,
            "schedule": [
                {"days": "mon-fri", "from": "08:00", "to": "18:00", "rate": 2_000_000},
                {"days": "fri", "from": "22:00", "to": "06:00", "rate": 0},
            ],
        }
    )
    at = lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC)  # noqa: E731
    assert limit.rate_at(at("2026-11-25T09:00")) == 2_000_000  # Wednesday, business hours
    assert limit.rate_at(at("2026-11-25T19:00")) is None
    assert limit.rate_at(at("2026-11-28T10:00")) is None  # Saturday
    assert limit.rate_at(at("2026-11-27T23:00")) == 0  # Friday night
    assert limit.rate_at(at("2026-11-28T05:59")) == 0  # ... into Saturday morning
    assert limit.rate_at(at("2026-11-28T06:00")) is None
    assert limit.next_change(at("2026-11-25T17:30")) == at("2026-11-25T18:00")
    assert BandwidthLimit.from_dict(None).unlimited


@pytest.mark.parametrize(
    ("limit", "says"),
    [
        ({"rate": -1}, "a rate is bytes per second"),
        ({"schedule": [{"days": "someday", "from": "08:00", "to": "09:00"}]}, "unknown day"),
        ({"schedule": [{"days": "mon", "from": "8 am", "to": "09:00"}]}, "not a time"),
        ("fast", "an object"),
    ],
)
def test_a_bad_limit_is_refused_with_what_is_wrong(limit: object, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        BandwidthLimit.from_dict(limit)


def test_a_schedule_change_mid_download_pauses_it_and_the_next_run_resumes_without_loss(
    world: ClientWorld, dp: StoreServer
) -> None:
    data = os.urandom(12 * 1024 * 1024)  # three 4 MiB chunks: the schedule is read between
    package = world.package({"data.bin": data})
    write_store(dp.root, package.blobs)
    world.serve_from(package, ("dp1", dp.url))
    world.publish(deployment_entry(package), bandwidth={"rate": None, "schedule": [PAUSED_HOUR]})
    sha = sha256_bytes(data)
    part = world.home.cache / "content" / "sha256" / sha[:2] / f"{sha}.part"

    def clock() -> datetime:
        """Noon until the first 4 MiB are on disk, then 13:05: the paused hour begins."""
        received = part.stat().st_size if part.exists() else 0
        return WEDNESDAY_NOON + timedelta(hours=1, minutes=5) * (received >= 4 * 1024 * 1024)

    world.clock = clock  # type: ignore[assignment]
    summary = world.run()
    kept = part.stat().st_size
    assert 4 * 1024 * 1024 <= kept < len(data)
    assert not part.with_suffix("").exists()
    [paused] = world.site.messages(10037)
    assert paused["insertion_strings"][4:7] == [str(kept), str(len(data)), "2026-11-25T14:00Z"]
    assert summary.next_wakeup == WEDNESDAY_NOON + timedelta(hours=2)  # when it may go on
    assert 10008 not in world.site.ids() and 10051 not in world.site.ids()

    world.clock = lambda: WEDNESDAY_NOON + timedelta(hours=2, minutes=1)  # type: ignore[assignment]
    world.run()
    assert dp.blob_requests()[-1][1] == f"bytes={kept}-"  # resumed, not started again
    [verified] = world.site.messages(10036)
    assert verified["insertion_strings"][5] == str(len(data) - kept)  # no byte fetched twice
    assert world.site.ids()[-1] == 10008
