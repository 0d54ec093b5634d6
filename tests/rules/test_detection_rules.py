"""The detection rule language: what parses, its canonical text, and where a mistake is."""

from __future__ import annotations

import pytest

from quartermaster.core.detection_rules import (
    FileRule,
    ManifestRule,
    PackageRule,
    RuleError,
    ScriptRule,
    detection,
    parse_rule,
)
from quartermaster.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "parsed", "canonical"),
    [
        ("file:/usr/bin/tool", FileRule("/usr/bin/tool"), "file:/usr/bin/tool"),
        ("file:/a sha256=" + "AB" * 32, FileRule("/a", sha256="ab" * 32), None),
        (
            'file:"/opt/My App/v.txt" version >= 2.1',
            FileRule("/opt/My App/v.txt", "", ">=", "2.1"),
            'file:"/opt/My App/v.txt" version>=2.1',
        ),
        ("dpkg:qm-test-tool", PackageRule("dpkg", "qm-test-tool"), None),
        ("dpkg:libc6:amd64>=2.36-9", PackageRule("dpkg", "libc6:amd64", ">=", "2.36-9"), None),
        (
            "dpkg:tool < 1:2.0~rc1",
            PackageRule("dpkg", "tool", "<", "1:2.0~rc1"),
            "dpkg:tool<1:2.0~rc1",
        ),
        ("rpm:bash=5.1.8-6.el9", PackageRule("rpm", "bash", "=", "5.1.8-6.el9"), None),
        ("script:test -x /bin/sh && echo yes", ScriptRule("test -x /bin/sh && echo yes"), None),
        ("script[5s]:echo hi", ScriptRule("echo hi", 5), "script[5]:echo hi"),
        ("manifest:/opt/tool", ManifestRule("/opt/tool"), None),
        ("file:C:\\Tools\\x.exe", None, None),
    ],
)
def test_good_rules_parse_to_their_canonical_text(
    text: str, parsed: object, canonical: str | None
) -> None:
    rule = parse_rule(text)
    if parsed is not None:
        assert rule == parsed
    assert rule.text == (canonical or text.replace("AB" * 32, "ab" * 32))
    assert parse_rule(rule.text) == rule  # the canonical text parses back to the same rule


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("wat:/x", 1, "unknown rule kind"),
        ("/usr/bin/tool", 14, "starts with KIND"),
        ("file:", 6, "path is missing"),
        ("file:relative/path", 6, "not absolute"),
        ("file:/x sha256=abc", 16, "64 hexadecimal"),
        ("file:/x version", 16, "needs an operator"),
        ("file:/x version~2", 16, "expected one of"),
        ("file:/x size=3", 9, "unexpected"),
        ('file:"/x y', 6, "no closing quote"),
        ("dpkg:", 6, "name is missing"),
        ("dpkg:Tool", 6, "name is missing or invalid"),
        ("dpkg:tool=>1.0", 10, "not an operator"),
        ("dpkg:tool>=", 12, "version is missing"),
        ("dpkg:tool>=beta", 12, "does not start with digit"),
        ("dpkg:tool>=1.0_1", 15, "invalid character"),
        ("rpm:bash>=5 1", 12, "invalid character"),
        ("script:", 8, "command is missing"),
        ("script[x]:echo", 7, "script[SECONDS]"),
        ("script[0]:echo", 8, "1 to 600"),
        ("manifest:opt", 10, "not absolute"),
    ],
)
def test_every_bad_rule_is_refused_with_its_column(text: str, column: int, problem: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text)
    assert caught.value.column == column, caught.value.message
    assert problem in caught.value.message
    assert f"column {column}" in caught.value.message
    assert caught.value.hint


def test_a_set_of_rules_needs_one_rule_and_a_known_combination() -> None:
    assert detection(["file:/x", "dpkg:yy"], "any").to_dict() == {
        "combine": "any",
        "rules": ["file:/x", "dpkg:yy"],
    }
    with pytest.raises(InvalidInput, match="at least one"):
        detection([])
    with pytest.raises(InvalidInput, match="'all' or 'any'"):
        detection(["file:/x"], "most")
