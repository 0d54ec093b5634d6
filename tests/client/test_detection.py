"""Detection rules evaluated on this computer: files, versions in text and ELF, scripts, dpkg."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

from quartermaster.client.detection import ABSENT, ERROR, PRESENT, Detector, read_version
from quartermaster.core.detection_rules import detection, parse_rule
from quartermaster.core.hashing import sha256_bytes
from tests.required_programs import program


def _one(text: str) -> tuple[str, str]:
    finding = Detector().rule(parse_rule(text), lambda: None)
    return finding.result, finding.saw


def test_file_rules_see_existence_content_and_version(tmp_path: Path) -> None:
    tool = tmp_path / "VERSION"
    tool.write_text("MyTool3 release 2.10.1 (build 7)\n")
    assert _one(f"file:{tool}") == (PRESENT, "exists")
    assert _one(f"file:{tmp_path / 'nope'}") == (ABSENT, "does not exist")
    assert _one(f"file:{tool} sha256={sha256_bytes(tool.read_bytes())}")[0] == PRESENT
    assert _one(f"file:{tool} sha256={'0' * 64}")[0] == ABSENT
    assert _one(f"file:{tool} version>=2.9") == (PRESENT, "version 2.10.1")  # 2.10 > 2.9
    assert _one(f"file:{tool} version<2.10") == (ABSENT, "version 2.10.1")
    (tmp_path / "blank").write_text("no version here\n")
    assert _one(f"file:{tmp_path / 'blank'} version>=1.0")[0] == ABSENT


def _with_package_note(source: Path, target: Path, version: str) -> None:
    """A copy of an ELF program carrying the FDO packaging metadata note (as systemd's
    package notes do): owner "FDO", type 0xcafe1a7e, a JSON description."""
    payload = json.dumps({"type": "deb", "name": "qm-tool", "version": version}).encode() + b"\0"
    name = b"FDO\0"
    note = struct.pack("<III", len(name), len(payload), 0xCAFE1A7E) + name
    note += payload + b"\0" * (-len(payload) % 4)
    note_file = target.with_suffix(".note")
    note_file.write_bytes(note)
    subprocess.run(
        ["objcopy", "--add-section", f".note.package={note_file}", str(source), str(target)],
        check=True,
    )


def test_an_elf_programs_version_comes_from_its_package_note(tmp_path: Path) -> None:
    program("objcopy")  # builds the test program
    tool = tmp_path / "tool"
    _with_package_note(Path("/bin/true"), tool, "4.2.0-1")
    assert read_version(tool) == "4.2.0-1"
    assert _one(f"file:{tool} version>=4.2")[0] == PRESENT
    assert read_version(Path("/bin/true")) is None  # no note: no version, never a guess
    assert subprocess.run([str(tool)], check=False).returncode == 0  # still runs


def test_script_rule_needs_exit_zero_and_output_within_its_time(tmp_path: Path) -> None:
    assert _one("script:echo installed") == (PRESENT, "exit code 0, stdout 'installed'")
    assert _one("script:true")[0] == ABSENT  # exit 0 but nothing on stdout
    assert _one("script:echo yes; exit 1")[0] == ABSENT
    assert _one("script[1]:sleep 30; echo late") == (ERROR, "did not finish within 1 seconds")


def test_all_and_any_stop_at_the_first_deciding_rule(tmp_path: Path) -> None:
    here, gone = tmp_path / "here", tmp_path / "gone"
    here.write_text("x")
    detector = Detector()
    found = detector.evaluate(detection([f"file:{gone}", "script[1]:sleep 5"], "all"), lambda: None)
    assert found.result == ABSENT and len(found.evidence) == 1  # the script never ran
    found = detector.evaluate(detection(["script[1]:sleep 5", f"file:{here}"], "all"), lambda: None)
    assert found.result == ERROR  # nothing said absent, one rule could not answer
    found = detector.evaluate(detection([f"file:{gone}", f"file:{here}"], "any"), lambda: None)
    assert found.result == PRESENT and [f.result for f in found.evidence] == [ABSENT, PRESENT]
    found = detector.evaluate(detection([f"file:{gone}", "script:true"], "any"), lambda: None)
    assert found.result == ABSENT


def test_dpkg_rules_read_the_real_package_database() -> None:
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "dpkg"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _one("dpkg:dpkg") == (PRESENT, f"version {installed} installed")
    assert _one("dpkg:dpkg>=1.0")[0] == PRESENT
    assert _one("dpkg:dpkg<1.0")[0] == ABSENT
    assert _one("dpkg:qm-test-surely-not-installed") == (ABSENT, "not installed")
