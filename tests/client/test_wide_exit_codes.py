"""A listed exit code above 255 (Windows Installer's 1618) is named as the administrator
listed it, with why the computer saw its low 8 bits, in the retry status message."""

from __future__ import annotations

from pathlib import Path

from quartermaster.core.program import ProgramSpec

from .conftest import ClientWorld
from .servers import StoreServer


def test_a_wide_code_is_named_with_the_8_bit_status_it_arrived_as() -> None:
    spec = ProgramSpec("Install", "msiexec", retry_codes=(1618,))
    assert spec.exit_code_text(82, posix=True) == (
        "1618 (seen as exit status 82: a POSIX exit status keeps only the low 8 bits, "
        "and 1618 mod 256 = 82)"
    )
    assert spec.exit_code_text(1618, posix=False) == "1618"
    assert spec.exit_code_text(5, posix=True) == "5"


def test_the_retry_message_says_1618_not_82(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker = tmp_path / "tried-once"
    world.deploy(
        dp,
        command=f"test -f {marker} && exit 0; touch {marker}; exit 82",
        retry_codes=[1618],
        retry_delay=0,
    )
    world.run()
    [retry] = world.site.messages(10034)
    assert retry["insertion_strings"][3].startswith("1618 (seen as exit status 82:")
    assert retry["properties"]["exit_code"] == 82
    assert world.site.ids()[-1] == 10008
