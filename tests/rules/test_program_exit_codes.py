"""What a program's exit code means, on POSIX (8-bit statuses) and elsewhere."""

from __future__ import annotations

import pytest

from quartermaster.core.errors import InvalidInput
from quartermaster.core.program import Outcome, ProgramSpec

SPEC = ProgramSpec("Install", "sh install.sh", retry_codes=(1618,))


@pytest.mark.parametrize(
    ("status", "posix", "outcome"),
    [
        (0, True, Outcome.SUCCESS),
        (3010, False, Outcome.SUCCESS_REBOOT),
        (1641, False, Outcome.SUCCESS_REBOOT),
        (194, True, Outcome.SUCCESS_REBOOT),  # 3010 & 0xFF
        (105, True, Outcome.SUCCESS_REBOOT),  # 1641 & 0xFF
        (194, False, Outcome.FAILURE),  # a 32-bit status is taken as it is
        (82, True, Outcome.RETRY),  # 1618 & 0xFF
        (1, True, Outcome.FAILURE),
    ],
)
def test_exit_status_meaning(status: int, posix: bool, outcome: Outcome) -> None:
    assert SPEC.classify(status, posix=posix) is outcome


def test_hard_reboot_is_recognised_through_its_low_bits() -> None:
    assert SPEC.reboot_kind(105, posix=True) == "hard"
    assert SPEC.reboot_kind(194, posix=True) == "soft"


def test_an_exactly_listed_status_wins_over_low_bits() -> None:
    spec = ProgramSpec("P", "x", success_codes=(0, 194))
    assert spec.classify(194, posix=True) is Outcome.SUCCESS


@pytest.mark.parametrize(
    "codes",
    [
        {"success_codes": (0, 3010)},
        {"retry_codes": (450,), "reboot_codes": (3010, 1641, 194 + 256)},
    ],
)
def test_ambiguous_codes_are_refused(codes: dict[str, tuple[int, ...]]) -> None:
    with pytest.raises(InvalidInput):
        ProgramSpec("P", "x", **codes)  # type: ignore[arg-type]
