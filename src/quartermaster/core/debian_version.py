"""Debian package versions: parsed and ordered exactly as `dpkg --compare-versions` does.

A version is ``[epoch:]upstream[-revision]``. Upstream and revision compare part by part:
runs of non-digits by character, where ``~`` sorts before everything (even the end of the
string), letters before other characters; runs of digits by their numeric value. A missing
revision compares as an empty one (so ``1.0`` equals ``1.0-0``). This is dpkg's
``verrevcmp`` (lib/dpkg/version.c), and tests check it against the real dpkg.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

from quartermaster.core.errors import InvalidInput

_UPSTREAM_EXTRA = frozenset(".-+~:")
_REVISION_EXTRA = frozenset(".+~")
_MAX_EPOCH = 2**31 - 1


class VersionSyntaxError(InvalidInput):
    """A version dpkg would refuse or warn about; `offset` is where (0-based)."""

    code = "bad_version"

    def __init__(self, text: str, offset: int, problem: str) -> None:
        super().__init__(
            f"Debian version {text!r}: {problem}",
            "a Debian version is [epoch:]upstream[-revision], upstream starting with a digit, "
            "e.g. 2.4.1-1 or 1:2.0~rc1",
        )
        self.offset = offset
        self.problem = problem


@total_ordering
@dataclass(frozen=True)
class DebianVersion:
    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        text = f"{self.epoch}:{self.upstream}" if self.epoch else self.upstream
        return f"{text}-{self.revision}" if self.revision else text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, DebianVersion):
            return NotImplemented
        return compare(self, other) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DebianVersion):
            return NotImplemented
        return compare(self, other) == 0

    def __hash__(self) -> int:
        return hash((self.epoch, _key_text(self.upstream), _key_text(self.revision)))


def _key_text(text: str) -> str:
    """Versions equal under verrevcmp differ only in leading zeros of digit runs."""
    out, digits = [], ""
    for char in text + "\0":
        if char.isdigit():
            digits += char
            continue
        if digits:
            out.append(str(int(digits)))
            digits = ""
        out.append(char)
    return "".join(out)


def parse(text: str, strict: bool = True) -> DebianVersion:
    """The version in `text`; `strict` refuses what dpkg only warns about, too."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    if not stripped:
        raise VersionSyntaxError(text, 0, "version string is empty")
    space = next((i for i, c in enumerate(stripped) if c.isspace()), -1)
    if space >= 0:
        raise VersionSyntaxError(text, lead + space, "version string has embedded spaces")
    epoch, rest, rest_at = 0, stripped, lead
    if ":" in stripped:
        head, _, rest = stripped.partition(":")
        rest_at = lead + len(head) + 1
        if not head:
            raise VersionSyntaxError(text, lead, "epoch in version is empty")
        if not head.isascii() or not head.isdigit():
            raise VersionSyntaxError(text, lead, "epoch in version is not number")
        epoch = int(head)
        if epoch > _MAX_EPOCH:
            raise VersionSyntaxError(text, lead, "epoch in version is too big")
        if not rest:
            raise VersionSyntaxError(text, rest_at, "nothing after colon in version number")
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        raise VersionSyntaxError(text, rest_at + len(rest), "revision number is empty")
    if not upstream:
        raise VersionSyntaxError(text, rest_at, "version number is empty")
    if strict:
        _check_characters(text, upstream, rest_at, revision, rest_at + len(upstream) + 1)
    return DebianVersion(epoch, upstream, revision)


def _check_characters(
    text: str, upstream: str, upstream_at: int, revision: str, revision_at: int
) -> None:
    if not _ascii_digit(upstream[0]):
        raise VersionSyntaxError(text, upstream_at, "version number does not start with digit")
    for i, char in enumerate(upstream):
        if not (_ascii_alnum(char) or char in _UPSTREAM_EXTRA):
            raise VersionSyntaxError(text, upstream_at + i, "invalid character in version number")
    for i, char in enumerate(revision):
        if not (_ascii_alnum(char) or char in _REVISION_EXTRA):
            raise VersionSyntaxError(text, revision_at + i, "invalid character in revision number")


def _ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _ascii_alnum(char: str) -> bool:
    return _ascii_digit(char) or "a" <= char.lower() <= "z"


def _order(char: str) -> int:
    if not char or _ascii_digit(char):
        return 0
    if "a" <= char.lower() <= "z":
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of one upstream version or revision (negative, 0, positive)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _ascii_digit(a[i])) or (j < len(b) and not _ascii_digit(b[j])):
            ac, bc = _order(a[i : i + 1]), _order(b[j : j + 1])
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and j < len(b) and _ascii_digit(a[i]) and _ascii_digit(b[j]):
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and _ascii_digit(a[i]):
            return 1
        if j < len(b) and _ascii_digit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def compare(a: DebianVersion, b: DebianVersion) -> int:
    """-1, 0 or 1, as the order `dpkg --compare-versions a lt|eq|gt b` says."""
    if a.epoch != b.epoch:
        return -1 if a.epoch < b.epoch else 1
    result = verrevcmp(a.upstream, b.upstream) or verrevcmp(a.revision, b.revision)
    return (result > 0) - (result < 0)


def compare_text(a: str, b: str) -> int:
    """Compare two version strings as dpkg does (dpkg parses both, only warning on syntax)."""
    return compare(parse(a, strict=False), parse(b, strict=False))
