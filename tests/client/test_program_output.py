"""The last output of a failed program goes with its failure message, secrets masked."""

from __future__ import annotations

import pytest

from quartermaster.client.program_output import MASK, command_secrets, masked_command

from .conftest import ClientWorld
from .servers import StoreServer


@pytest.mark.parametrize(
    ("command", "secrets"),
    [
        ("setup.sh --password=hunter2 -q", ["hunter2"]),
        ("setup.sh --password 'two words' -q", ["two words"]),
        ("msiexec /i app.msi PASSWORD=S3cret! /qn", ["S3cret!"]),
        ("setup /token:abcdef", ["abcdef"]),
        ("curl -o x https://admin:pa55w0rd@repo.example/app.tgz", ["pa55w0rd"]),
        ("install.sh --api-key=XYZ123 --verbose", ["XYZ123"]),
        ("install.sh --name lab --port 8080", []),
        ("install.sh --password", []),  # nothing follows: nothing to hide
    ],
)
def test_secrets_are_found_in_a_command_line(command: str, secrets: list[str]) -> None:
    assert command_secrets(command) == secrets
    for secret in secrets:
        assert secret not in masked_command(command) and MASK in masked_command(command)


def test_a_failure_carries_the_end_of_the_output_and_a_success_carries_none(
    world: ClientWorld, dp: StoreServer
) -> None:
    script = b'for i in $(seq 1 20000); do echo "line $i"; done; echo "with $*"; exit 3\n'
    world.deploy(dp, {"setup.sh": script}, command="sh setup.sh --password=hunter2")
    world.run()
    [failed] = world.site.messages(10006)
    tail = failed["output_tail"]
    assert tail.endswith("line 20000\nwith --password=********\n")
    assert "hunter2" not in tail and len(tail.encode()) <= 64 * 1024
    assert not any("output_tail" in m for m in world.site.messages(10005))


def test_retries_carry_no_output_until_they_run_out(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(
        dp,
        {"setup.sh": b"echo attempt failed; exit 5\n"},
        command="sh setup.sh",
        retry_codes=[5],
        retry_count=1,
        retry_delay=0,
    )
    world.run()
    [retrying] = world.site.messages(10034)
    assert "output_tail" not in retrying
    [exhausted] = world.site.messages(10006)
    assert exhausted["output_tail"] == "attempt failed\n"


def test_a_program_stopped_at_its_time_limit_sends_what_it_printed(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(
        dp,
        {"setup.sh": b"echo waiting for the network; sleep 30\n"},
        command="sh setup.sh",
        max_runtime=1,
    )
    world.run()
    [stopped] = world.site.messages(10070)
    assert stopped["output_tail"] == "waiting for the network\n"
