"""Sign-in throttling is kept in the database: every site process counts the same failures,
a restart forgets none, and a failure from one address locks the name out for nobody else.

Before, each process counted in memory and five failures from anywhere locked a name out
for everyone for 15 minutes. The attacks go through real `qm site serve` processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.console_login import (
    PASSWORD,
    browser,
    second_process,
    site_with_password,
    try_sign_in,
)

pytestmark = pytest.mark.e2e

WRONG = "not the password at all"


def test_failures_count_in_every_site_process_and_survive_a_restart(tmp_path: Path) -> None:
    first = site_with_password(tmp_path)
    first.start()
    other = second_process(first, tmp_path)
    other.start()
    try:
        with browser(first) as attacker:
            assert [try_sign_in(attacker, "admin", WRONG) for _ in range(5)] == [401] * 5
            assert try_sign_in(attacker, "admin", PASSWORD) == 429
        with browser(other) as attacker:  # the other process knows
            assert try_sign_in(attacker, "admin", PASSWORD) == 429
        first.stop()
        first.start()
        with browser(first) as attacker:  # and a restart forgets nothing
            assert try_sign_in(attacker, "admin", PASSWORD) == 429
        with browser(other, "127.0.0.2") as owner:  # nor is the name locked for others
            assert try_sign_in(owner, "admin", PASSWORD) == 303
    finally:
        other.stop()
        first.stop()


def test_a_forged_forwarded_for_changes_nothing_unless_the_proxy_is_trusted(
    tmp_path: Path,
) -> None:
    site = site_with_password(tmp_path / "direct")
    site.start()
    try:
        for n in range(5):
            with browser(site, **{"X-Forwarded-For": f"10.0.0.{n}"}) as attacker:
                assert try_sign_in(attacker, "admin", WRONG) == 401
        with browser(site, **{"X-Forwarded-For": "10.0.0.99"}) as attacker:
            assert try_sign_in(attacker, "admin", PASSWORD) == 429  # still 127.0.0.1
    finally:
        site.stop()
    proxied = site_with_password(tmp_path / "proxied", "--trusted-proxy", "127.0.0.1")
    proxied.start()
    try:
        with browser(proxied, **{"X-Forwarded-For": "10.0.0.1"}) as attacker:
            assert [try_sign_in(attacker, "admin", WRONG) for _ in range(5)] == [401] * 5
            assert try_sign_in(attacker, "admin", PASSWORD) == 429
        with browser(proxied, **{"X-Forwarded-For": "10.0.0.2"}) as owner:
            assert try_sign_in(owner, "admin", PASSWORD) == 303  # another client, via the proxy
    finally:
        proxied.stop()
