"""RPM versions: ordered as rpm's own ``rpmvercmp`` and ``[epoch:]version[-release]`` do.

Segments are runs of ASCII letters or digits; everything else only separates them. Digits
compare as numbers and beat letters; ``~`` sorts before everything (even the end), ``^``
after the end but before any further segment. Tests check this against the real `rpm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quartermaster.core.errors import InvalidInput

_ALLOWED = re.compile(r"[A-Za-z0-9._+~^:-]+")


def _alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _skip_separators(text: str, i: int) -> int:
    while i < len(text) and not _alnum(text[i]) and text[i] not in "~^":
        i += 1
    return i


def _segment(text: str, i: int, digits: bool) -> int:
    test = str.isdigit if digits else str.isalpha
    while i < len(text) and text[i].isascii() and test(text[i]):
        i += 1
    return i


def rpmvercmp(a: str, b: str) -> int:
    """-1, 0 or 1 as rpm's rpmvercmp (rpmio/rpmvercmp.c) answers for two strings."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        i, j = _skip_separators(a, i), _skip_separators(b, j)
        one, two = a[i : i + 1], b[j : j + 1]
        if "~" in (one, two):
            if one != "~":
                return 1
            if two != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if "^" in (one, two):
            if not one:
                return -1
            if not two:
                return 1
            if one != "^":
                return 1
            if two != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (one and two):
            break
        numeric = one.isdigit()
        end_a, end_b = _segment(a, i, numeric), _segment(b, j, numeric)
        if end_b == j:
            return 1 if numeric else -1
        seg_a, seg_b = a[i:end_a], b[j:end_b]
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = end_a, end_b
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


@dataclass(frozen=True)
class RpmVersion:
    epoch: str | None
    version: str
    release: str | None

    def __str__(self) -> str:
        text = f"{self.epoch}:{self.version}" if self.epoch is not None else self.version
        return f"{text}-{self.release}" if self.release is not None else text


def parse(text: str) -> RpmVersion:
    """``[epoch:]version[-release]`` split as rpm's parseEVR does."""
    digits = 0
    while digits < len(text) and text[digits].isascii() and text[digits].isdigit():
        digits += 1
    rest = text
    epoch: str | None = None
    if text[digits : digits + 1] == ":":
        epoch, rest = text[:digits] or "0", text[digits + 1 :]
    version, hyphen, release = rest.rpartition("-")
    if not hyphen:
        return RpmVersion(epoch, rest, None)
    return RpmVersion(epoch, version, release)


def check(text: str) -> int:
    """The 0-based offset of the first character an RPM version may not hold, or -1."""
    if not text:
        return 0
    match = _ALLOWED.match(text)
    end = match.end() if match else 0
    return -1 if end == len(text) else end


def compare(a: RpmVersion, b: RpmVersion) -> int:
    """The order of rpm's ``rpm.vercmp``: epoch (missing is 0), version, then release, a
    missing release comparing as an empty one (so ``1.0 < 1.0-1``)."""
    result = rpmvercmp(a.epoch or "0", b.epoch or "0") or rpmvercmp(a.version, b.version)
    if result == 0 and (a.release is not None or b.release is not None):
        result = rpmvercmp(a.release or "", b.release or "")
    return result


def compare_text(a: str, b: str) -> int:
    if check(a) >= 0 or check(b) >= 0:
        raise InvalidInput(f"{a!r} or {b!r} is not an RPM version")
    return compare(parse(a), parse(b))
