"""A small simulated fleet against a real site on PostgreSQL: completeness, never timing."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.fleet import FleetConfig, format_report, run_fleet

from tests.e2e.processes import start_site

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]


# Completeness only: on a busy 2-core machine the run takes minutes, never asserted on.
@pytest.mark.timeout(1500)
def test_two_thousand_clients_all_succeed_and_every_message_counts_once(
    tmp_path: Path, postgres_url: str
) -> None:
    # every simulated client registers from 127.0.0.1: no per-address limit
    site = start_site(tmp_path, database=postgres_url, config={"registrations_per_minute": 0})
    try:
        report = run_fleet(
            FleetConfig(
                sites=[site.url],
                token=site.token,
                clients=2000,
                hour=15.0,
                polls_after_wave=1,
                concurrency=64,
                database=postgres_url,
                resend_fraction=0.05,
                quiet=True,
            )
        )
    finally:
        site.stop()
    verification = report["verification"]
    assert verification["complete"], format_report(report)
    assert verification["succeeded"] == verification["targeted"] == 2000
    assert verification["messages_sent"] == 2000 * 5
    assert (verification["missing"], verification["duplicated"]) == (0, 0)
    assert report["status_messages_accepted"] == 2000 * 5  # resent batches were all duplicates
