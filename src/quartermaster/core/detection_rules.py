"""Detection rules: how a client tells whether an application is installed, as pure data.

One rule per text, parsed here (site and client alike) into a small object; a mistake is
refused with the column where it is. docs/applications.md has the language::

    file:PATH                      exists (a regular file or a folder)
    file:PATH sha256=HEX           exists with exactly this content
    file:PATH version>=X           a version read from the file compares (= < <= > >=)
    dpkg:NAME[:ARCH] [OP VERSION]  installed per dpkg, Debian version order
    rpm:NAME [OP VERSION]          installed per rpm, rpmvercmp order
    script[SECONDS]:COMMAND        exits 0 and prints something on stdout (default 60 s)
    manifest:DIR                   every file of the package is at DIR/path with its hash

A PATH with spaces is written in double quotes: ``file:"/opt/My App/app" version>=2``.
Rules combine with ``all`` (every rule says present) or ``any`` (one does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from quartermaster.core import debian_version, rpm_version
from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex

OPERATORS = (">=", "<=", "=", ">", "<")
COMBINE = ("all", "any")
MAX_RULES = 20
MAX_RULE_LENGTH = 2000
DEFAULT_SCRIPT_SECONDS = 60
MAX_SCRIPT_SECONDS = 600
_DPKG_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9][a-z0-9-]*)?")
_RPM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_HINT = (
    "rules are file:PATH [sha256=HEX | version>=X], dpkg:NAME[>=VERSION], "
    "rpm:NAME[>=VERSION], script[SECONDS]:COMMAND or manifest:DIR (docs/applications.md)"
)


class RuleError(InvalidInput):
    """A detection rule that does not parse; `column` is 1-based."""

    code = "bad_detection_rule"

    def __init__(self, text: str, column: int, problem: str, hint: str = _HINT) -> None:
        super().__init__(f"detection rule {text!r}, column {column}: {problem}", hint)
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class FileRule:
    path: str
    sha256: str = ""
    operator: str = ""
    version: str = ""

    @property
    def text(self) -> str:
        path = f'"{self.path}"' if " " in self.path else self.path
        if self.sha256:
            return f"file:{path} sha256={self.sha256}"
        if self.operator:
            return f"file:{path} version{self.operator}{self.version}"
        return f"file:{path}"


@dataclass(frozen=True)
class PackageRule:
    manager: str  # dpkg | rpm
    name: str
    operator: str = ""
    version: str = ""

    @property
    def text(self) -> str:
        return f"{self.manager}:{self.name}{self.operator}{self.version}"


@dataclass(frozen=True)
class ScriptRule:
    command: str
    seconds: int = DEFAULT_SCRIPT_SECONDS

    @property
    def text(self) -> str:
        if self.seconds == DEFAULT_SCRIPT_SECONDS:
            return f"script:{self.command}"
        return f"script[{self.seconds}]:{self.command}"


@dataclass(frozen=True)
class ManifestRule:
    target: str

    @property
    def text(self) -> str:
        return f"manifest:{self.target}"


Rule = FileRule | PackageRule | ScriptRule | ManifestRule


@dataclass(frozen=True)
class Detection:
    """The rules of one application revision and how they combine."""

    rules: tuple[Rule, ...]
    combine: str = "all"

    def to_dict(self) -> dict[str, Any]:
        return {"combine": self.combine, "rules": [r.text for r in self.rules]}

    @classmethod
    def from_dict(cls, data: Any) -> Detection:
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise InvalidInput("detection is not an object with a list of rules")
        return detection([str(r) for r in data["rules"]], str(data.get("combine", "all")))


def detection(texts: list[str], combine: str = "all") -> Detection:
    """Parse every rule; the first mistake is refused with its position."""
    if combine not in COMBINE:
        raise InvalidInput(f"rules combine with 'all' or 'any', not {combine!r}")
    if not texts:
        raise InvalidInput("an application needs at least one detection rule", _HINT)
    if len(texts) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} detection rules")
    return Detection(tuple(parse_rule(t) for t in texts), combine)


def parse_rule(text: str) -> Rule:
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(text[:40] + "...", MAX_RULE_LENGTH, "the rule is too long")
    kind, colon, body = text.partition(":")
    if not colon:
        raise RuleError(text, len(text) + 1, "a rule starts with KIND: (file, dpkg, ...)")
    at = len(kind) + 2  # column of the body
    if kind == "file":
        return _file(text, body, at)
    if kind in ("dpkg", "rpm"):
        return _package(text, kind, body, at)
    if kind.startswith("script"):
        return _script(text, kind, body, at)
    if kind == "manifest":
        return ManifestRule(_absolute(text, body.strip(), at))
    raise RuleError(text, 1, f"unknown rule kind {kind!r}")


def _absolute(text: str, path: str, at: int) -> str:
    if not path:
        raise RuleError(text, at, "a path is missing")
    if "\x00" in path:
        raise RuleError(text, at + path.index("\x00"), "the path holds a NUL character")
    windows = re.match(r"[A-Za-z]:[\\/]", path) is not None
    if not path.startswith("/") and not windows:
        raise RuleError(text, at, f"path {path!r} is not absolute", "start it with / (or C:\\)")
    return path


def _file(text: str, body: str, at: int) -> FileRule:
    if body.startswith('"'):
        end = body.find('"', 1)
        if end < 0:
            raise RuleError(text, at, "the quoted path has no closing quote")
        path, rest, rest_at = body[1:end], body[end + 1 :], at + end + 1
        path = _absolute(text, path, at + 1)
    else:
        path, _, rest = body.partition(" ")
        rest_at = at + len(path) + 1
        path = _absolute(text, path, at)
    clause = rest.strip()
    clause_at = rest_at + len(rest) - len(rest.lstrip())
    if not clause:
        return FileRule(path)
    if clause.startswith("sha256="):
        digest = clause[len("sha256=") :].lower()
        if not is_sha256_hex(digest):
            raise RuleError(text, clause_at + 7, "sha256= needs 64 hexadecimal digits")
        return FileRule(path, sha256=digest)
    if clause.startswith("version"):
        operator, version = _comparison(text, clause[len("version") :], clause_at + 7, "file")
        if not operator:
            raise RuleError(text, clause_at + 7, "version needs an operator, e.g. version>=2.0")
        return FileRule(path, operator=operator, version=version)
    raise RuleError(text, clause_at, f"unexpected {clause.split()[0]!r} after the path")


def _comparison(text: str, rest: str, at: int, manager: str) -> tuple[str, str]:
    """('>=', '2.0') from '>=2.0' (spaces allowed around the operator), or ('', '')."""
    if not rest.strip():
        return "", ""
    stripped = rest.lstrip()
    at += len(rest) - len(stripped)
    operator = next((op for op in OPERATORS if stripped.startswith(op)), "")
    if not operator:
        raise RuleError(text, at, f"expected one of {', '.join(OPERATORS)}")
    if stripped.startswith(("=>", "=<", ">>", "<<", "==")):
        raise RuleError(text, at, f"{stripped[:2]!r} is not an operator; use >=, <=, >, < or =")
    value = stripped[len(operator) :]
    value_at = at + len(operator) + len(value) - len(value.lstrip())
    value = value.strip()
    if not value:
        raise RuleError(text, value_at, "a version is missing after the operator")
    _check_version(text, manager, value, value_at)
    return operator, value


def _check_version(text: str, manager: str, value: str, at: int) -> None:
    if manager == "rpm":
        bad = rpm_version.check(value)
        if bad >= 0:
            raise RuleError(text, at + bad, "invalid character in an RPM version")
        return
    if manager == "file":
        if any(c.isspace() for c in value):
            raise RuleError(
                text,
                at + next(i for i, c in enumerate(value) if c.isspace()),
                "a version holds no spaces",
            )
        return
    try:
        debian_version.parse(value)
    except debian_version.VersionSyntaxError as exc:
        raise RuleError(text, at + exc.offset, exc.problem, exc.hint) from None


def _package(text: str, manager: str, body: str, at: int) -> PackageRule:
    pattern = _DPKG_NAME if manager == "dpkg" else _RPM_NAME
    lead = len(body) - len(body.lstrip())
    match = pattern.match(body, lead)
    if match is None:
        raise RuleError(text, at + lead, f"a {manager} package name is missing or invalid")
    operator, version = _comparison(text, body[match.end() :], at + match.end(), manager)
    return PackageRule(manager, match.group(0), operator, version)


def _script(text: str, kind: str, body: str, at: int) -> ScriptRule:
    seconds = DEFAULT_SCRIPT_SECONDS
    if kind != "script":
        limit = re.fullmatch(r"script\[(\d{1,6})s?\]", kind)
        if limit is None:
            raise RuleError(text, 7, "a time limit is written script[SECONDS]:COMMAND")
        seconds = int(limit.group(1))
        if not 1 <= seconds <= MAX_SCRIPT_SECONDS:
            raise RuleError(text, 8, f"the time limit must be 1 to {MAX_SCRIPT_SECONDS} seconds")
    if not body.strip():
        raise RuleError(text, at, "the command is missing")
    return ScriptRule(body.strip(), seconds)


def compare_versions(manager: str, found: str, operator: str, wanted: str) -> bool:
    """Whether `found OP wanted` holds in the order of `manager` (dpkg, rpm or file)."""
    if manager == "rpm":
        order = rpm_version.compare(rpm_version.parse(found), rpm_version.parse(wanted))
    else:  # file versions use Debian's order too: 2.10 > 2.9, 2.0~rc1 < 2.0
        order = debian_version.compare_text(found, wanted)
    return {
        "=": order == 0,
        ">=": order >= 0,
        "<=": order <= 0,
        ">": order > 0,
        "<": order < 0,
    }[operator]
