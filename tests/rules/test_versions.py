"""Debian and RPM version order, checked against the real dpkg and rpm over many pairs."""

from __future__ import annotations

import random
import subprocess

import pytest

from quartermaster.core import debian_version, rpm_version
from quartermaster.core.debian_version import VersionSyntaxError
from tests.required_programs import program

PIECES = ["0", "1", "2", "9", "10", "01", "a", "b", "z", "rc", "~", "~~", "+", ".", "-", "A"]


def _debian_versions(rng: random.Random, count: int) -> list[str]:
    found: list[str] = []
    while len(found) < count:
        upstream = str(rng.randint(0, 12)) + "".join(
            rng.choice([".", "+", "~", ""]) + rng.choice(PIECES[:10])
            for _ in range(rng.randint(0, 4))
        )
        text = upstream
        if rng.random() < 0.3:
            text = f"{rng.randint(0, 3)}:{text}"
        if rng.random() < 0.5:
            text += "-" + rng.choice(["1", "0", "2ubuntu1", "1~bpo1", "10", "1+b1"])
        try:
            debian_version.parse(text)
        except VersionSyntaxError:
            continue
        found.append(text)
    return found


def test_debian_order_is_dpkgs_over_generated_pairs() -> None:
    program("dpkg")  # these tests compare with the real one
    rng = random.Random(15)
    versions = _debian_versions(rng, 400)
    pairs = [(rng.choice(versions), rng.choice(versions)) for _ in range(400)]
    pairs += [("1.0~rc1", "1.0"), ("1.0", "1.0-0"), ("1:0.1", "2.0"), ("1.01", "1.1")]
    wrong = []
    for a, b in pairs:
        ours = debian_version.compare_text(a, b)
        lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode
        eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode
        theirs = -1 if lt == 0 else 0 if eq == 0 else 1
        if ours != theirs:
            wrong.append((a, b, ours, theirs))
    assert not wrong, wrong[:10]


def _rpm_versions(rng: random.Random, count: int) -> list[str]:
    parts = ["0", "1", "2", "10", "007", "a", "rc", "git", "~", "^", ".", "_", "+"]
    found = []
    for _ in range(count):
        text = str(rng.randint(0, 9)) + "".join(rng.choice(parts) for _ in range(rng.randint(0, 5)))
        if rng.random() < 0.2:
            text = f"{rng.randint(0, 2)}:{text}"
        if rng.random() < 0.5:
            text += "-" + rng.choice(["1", "2.el9", "0.rc1", "10", "1~beta"])
        found.append(text)
    return found


def test_rpm_order_is_rpms_over_generated_pairs() -> None:
    program("rpm")
    rng = random.Random(15)
    versions = _rpm_versions(rng, 300)
    pairs = [(rng.choice(versions), rng.choice(versions)) for _ in range(600)]
    pairs += [("1.0-1", "1.0"), ("1.0^git1", "1.0.1"), ("1.0~rc1", "1.0"), ("1:1.0", "2.0")]
    script = " ".join(f'print(rpm.vercmp("{a}", "{b}"), "\\n")' for a, b in pairs)
    done = subprocess.run(
        ["rpm", "--eval", "%{lua: " + script + "}"], capture_output=True, text=True, check=True
    )
    theirs = [int(x) for x in done.stdout.split()]
    assert len(theirs) == len(pairs)
    wrong = [
        (a, b, rpm_version.compare_text(a, b), t)
        for (a, b), t in zip(pairs, theirs, strict=True)
        if rpm_version.compare_text(a, b) != t
    ]
    assert not wrong, wrong[:10]


@pytest.mark.parametrize(
    ("text", "offset", "problem"),
    [
        ("", 0, "empty"),
        ("1.0 beta", 3, "embedded spaces"),
        (":1.0", 0, "epoch in version is empty"),
        ("a:1.0", 0, "not number"),
        ("1:", 2, "nothing after colon"),
        ("1.0-", 4, "revision number is empty"),
        ("beta1", 0, "does not start with digit"),
        ("1.0_1", 3, "invalid character in version"),
        ("1.0-1_2", 5, "invalid character in revision"),
    ],
)
def test_debian_syntax_errors_say_where(text: str, offset: int, problem: str) -> None:
    with pytest.raises(VersionSyntaxError) as caught:
        debian_version.parse(text)
    assert caught.value.offset == offset
    assert problem in caught.value.problem
