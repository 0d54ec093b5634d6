"""The DP agent's life outside a working site: enrollment state, an absent site, stopping."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from quartermaster.dp.agent import DPAgent, NotEnrolled, enroll, run_dp
from quartermaster.dp.home import DPHome
from quartermaster.dp.site_link import SiteUnreachable
from tests.dp.dp_fixtures import closed_port, enrolled_home, wait_for_log


def test_identity_is_stored_owner_only_and_reads_back(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", "http://127.0.0.1:8441")
    assert stat.S_IMODE(home.identity_path.stat().st_mode) == 0o600
    identity = home.load_identity()
    assert identity is not None
    assert (identity.dp, identity.credential, identity.site_code) == ("dp2", "qmd_secret", "QM1")
    assert len(identity.trusted_keys()) == 1


def test_agent_refuses_to_start_unenrolled(tmp_path: Path) -> None:
    with pytest.raises(NotEnrolled, match="not enrolled"):
        DPAgent(DPHome(tmp_path / "dp"))


def test_enrolling_with_an_unreachable_site_says_what_to_check(tmp_path: Path) -> None:
    home = DPHome(tmp_path / "dp")
    with pytest.raises(SiteUnreachable) as caught:
        enroll(home, f"http://127.0.0.1:{closed_port()}", "qme_token")
    assert "--site" in caught.value.hint
    assert home.load_identity() is None


def test_agent_retries_an_absent_site_and_stops_when_cancelled(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", f"http://127.0.0.1:{closed_port()}")
    agent = DPAgent(home, max_backoff=0.05)

    async def run_then_cancel() -> None:
        task = asyncio.create_task(agent.run_async())
        await asyncio.to_thread(wait_for_log, home, "site unreachable", 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    log = (home.root / "distmgr.log").read_text().splitlines()
    assert "DP dp2 stopped" in log[-1]
    assert 'component="distmgr"' in log[-1]
    assert agent.stopping


def test_agent_thread_stops_on_request(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", f"http://127.0.0.1:{closed_port()}")
    agent = DPAgent(home, max_backoff=3600)
    thread = agent.start_thread()
    wait_for_log(home, "retrying in")
    agent.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_wake_starts_the_next_cycle_without_waiting(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", f"http://127.0.0.1:{closed_port()}")
    agent = DPAgent(home, poll_interval=3600, max_backoff=3600)
    thread = agent.start_thread()
    try:
        wait_for_log(home, "site unreachable", 1)
        agent.wake()
        wait_for_log(home, "site unreachable", 2)
    finally:
        agent.stop()
        thread.join(30)


def test_run_dp_without_credential_or_token_refuses(tmp_path: Path) -> None:
    with pytest.raises(NotEnrolled):
        asyncio.run(run_dp(DPHome(tmp_path / "dp"), "http://127.0.0.1:8441"))


def test_run_dp_uses_the_stored_credential_and_stops_when_cancelled(tmp_path: Path) -> None:
    home = enrolled_home(tmp_path / "dp", f"http://127.0.0.1:{closed_port()}")

    async def run_then_cancel() -> None:
        task = asyncio.create_task(run_dp(home, token="qme_not_needed", max_backoff=0.05))
        await asyncio.to_thread(wait_for_log, home, "site unreachable")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    assert "enrolled" not in (home.root / "distmgr.log").read_text()
