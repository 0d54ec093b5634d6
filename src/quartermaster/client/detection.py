"""Detection: whether an application is on this computer, and the evidence, rule by rule.

Each rule says present, absent or error (it could not be evaluated). Rules combine in the
order given, stopping as soon as the answer is known:

- ``all``: the first rule that says absent makes the application absent; otherwise any
  error makes the result an error; otherwise it is present.
- ``any``: the first rule that says present makes it present; otherwise any error makes
  the result an error; otherwise it is absent.

The evidence lists every rule evaluated, what it saw, and its answer; it travels in the
status message properties. One `Detector` lives for one agent run: it asks dpkg and rpm
once each for every installed package (again after any program ran), so 600 package
rules cost two processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quartermaster.client.execution import stop_process_tree
from quartermaster.core.detection_rules import (
    Detection,
    FileRule,
    ManifestRule,
    PackageRule,
    Rule,
    ScriptRule,
    compare_versions,
)
from quartermaster.core.manifest import Manifest

PRESENT, ABSENT, ERROR = "present", "absent", "error"
TEXT_LIMIT = 64 * 1024  # a text file read for a version
ELF_LIMIT = 256 * 1024 * 1024
_VERSION = re.compile(r"(?<![0-9A-Za-z.])(\d+(?:\.\d+)+(?:[-~+][0-9A-Za-z.~+]+)?)")
_FDO_NOTE_TYPE = 0xCAFE1A7E  # the packaging metadata note (owner "FDO", JSON payload)


@dataclass(frozen=True)
class Finding:
    rule: str
    result: str  # present | absent | error
    saw: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "result": self.result, "saw": self.saw}


@dataclass(frozen=True)
class DetectionResult:
    result: str
    evidence: tuple[Finding, ...]

    @property
    def detected(self) -> bool:
        return self.result == PRESENT

    def evidence_list(self) -> list[dict[str, str]]:
        return [f.to_dict() for f in self.evidence]

    def summary(self) -> str:
        return "; ".join(f"{f.rule}: {f.saw}" for f in self.evidence)[:900]


ManifestSource = Callable[[], Manifest | None]


@dataclass
class Detector:
    """Evaluates rules; caches the installed-package lists until a program runs."""

    _dpkg: dict[str, str] | None = None
    _rpm: dict[str, str] | None = None
    _errors: dict[str, str] = field(default_factory=dict)

    def forget(self) -> None:
        """After a program ran: the installed packages may have changed."""
        self._dpkg = self._rpm = None
        self._errors.clear()

    def evaluate(self, detection: Detection, manifest: ManifestSource) -> DetectionResult:
        findings: list[Finding] = []
        stop = ABSENT if detection.combine == "all" else PRESENT
        for rule in detection.rules:
            finding = self.rule(rule, manifest)
            findings.append(finding)
            if finding.result == stop:
                return DetectionResult(stop, tuple(findings))
        if any(f.result == ERROR for f in findings):
            return DetectionResult(ERROR, tuple(findings))
        return DetectionResult(PRESENT if stop == ABSENT else ABSENT, tuple(findings))

    def rule(self, rule: Rule, manifest: ManifestSource) -> Finding:
        try:
            if isinstance(rule, FileRule):
                result, saw = _file(rule)
            elif isinstance(rule, PackageRule):
                result, saw = self._package(rule)
            elif isinstance(rule, ScriptRule):
                result, saw = _script(rule)
            else:
                result, saw = _manifest(rule, manifest())
        except OSError as exc:
            result, saw = ERROR, f"could not be read: {exc.strerror or exc}"
        return Finding(rule.text, result, saw)

    def _package(self, rule: PackageRule) -> tuple[str, str]:
        installed = self._installed(rule.manager)
        if installed is None:
            return ERROR, self._errors[rule.manager]
        version = installed.get(rule.name) or installed.get(rule.name.split(":")[0])
        if version is None:
            return ABSENT, "not installed"
        if not rule.operator:
            return PRESENT, f"version {version} installed"
        holds = compare_versions(rule.manager, version, rule.operator, rule.version)
        return (PRESENT if holds else ABSENT), f"version {version} installed"

    def _installed(self, manager: str) -> dict[str, str] | None:
        if manager == "dpkg":
            if self._dpkg is None and manager not in self._errors:
                self._dpkg = self._list(
                    [
                        "dpkg-query",
                        "-W",
                        "-f",
                        "${binary:Package}\\t${db:Status-Abbrev}\\t${Version}\\n",
                    ],
                    _dpkg_line,
                )
            return self._dpkg
        if self._rpm is None and manager not in self._errors:
            self._rpm = self._list(
                ["rpm", "-qa", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"], _rpm_line
            )
        return self._rpm

    def _list(
        self, command: list[str], parse: Callable[[str], tuple[str, str] | None]
    ) -> dict[str, str] | None:
        manager = "dpkg" if command[0].startswith("dpkg") else "rpm"
        if shutil.which(command[0]) is None:
            self._errors[manager] = f"{command[0]} is not on this computer"
            return None
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if done.returncode != 0 and not done.stdout:
            self._errors[manager] = f"{command[0]} failed: {done.stderr.strip()[:200]}"
            return None
        found: dict[str, str] = {}
        for line in done.stdout.splitlines():
            pair = parse(line)
            if pair:
                found[pair[0]] = pair[1]
                found.setdefault(pair[0].split(":")[0], pair[1])
        return found


def _dpkg_line(line: str) -> tuple[str, str] | None:
    """Installed means dpkg's status abbreviation says "ii" (or "hi": held)."""
    parts = line.split("\t")
    if len(parts) != 3 or parts[1].strip()[1:2] != "i":
        return None
    return parts[0], parts[2]


def _rpm_line(line: str) -> tuple[str, str] | None:
    name, _, version = line.partition("\t")
    return (name, version.removeprefix("0:")) if version else None


def _file(rule: FileRule) -> tuple[str, str]:
    path = Path(rule.path)
    if not os.path.lexists(path):
        return ABSENT, "does not exist"
    if rule.sha256:
        if not path.is_file():
            return ABSENT, "is not a regular file"
        digest = _sha256(path)
        if digest == rule.sha256:
            return PRESENT, f"sha256 {digest}"
        return ABSENT, f"sha256 {digest}"
    if rule.operator:
        version = read_version(path)
        if version is None:
            return ABSENT, "exists, but no version could be read from it"
        holds = compare_versions("file", version, rule.operator, rule.version)
        return (PRESENT if holds else ABSENT), f"version {version}"
    return PRESENT, "exists"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_version(path: Path) -> str | None:
    """The version a file states: an ELF file's packaging metadata note, else a text
    file's first version-like word (two or more dotted numbers, e.g. 2.4.1 or 1.0-3)."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(TEXT_LIMIT)
        if head.startswith(b"\x7fELF"):
            handle.seek(0)
            return _elf_version(handle.read(ELF_LIMIT))
    if b"\x00" in head:
        return None
    match = _VERSION.search(head.decode("utf-8", "replace"))
    return match.group(1) if match else None


def _elf_version(data: bytes) -> str | None:
    """``version`` of the FDO packaging metadata note (systemd's ELF package metadata)."""
    try:
        for owner, kind, payload in _elf_notes(data):
            if owner == b"FDO" and kind == _FDO_NOTE_TYPE:
                meta = json.loads(payload.rstrip(b"\x00").decode("utf-8"))
                version = meta.get("version") if isinstance(meta, dict) else None
                return str(version) if version else None
    except (struct.error, ValueError, UnicodeDecodeError):
        return None
    return None


def _elf_notes(data: bytes) -> list[tuple[bytes, int, bytes]]:
    wide, little = data[4] == 2, data[5] == 1
    order = "<" if little else ">"
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
    notes = []
    for index in range(shnum):
        at = shoff + index * shentsize
        (kind,) = struct.unpack_from(order + "I", data, at + 4)
        if kind != 7:  # SHT_NOTE
            continue
        if wide:
            offset, size = struct.unpack_from(order + "QQ", data, at + 0x18)
        else:
            offset, size = struct.unpack_from(order + "II", data, at + 0x10)
        notes += _notes(data[offset : offset + size], order)
    return notes


def _notes(section: bytes, order: str) -> list[tuple[bytes, int, bytes]]:
    found, at = [], 0
    while at + 12 <= len(section):
        namesz, descsz, kind = struct.unpack_from(order + "III", section, at)
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        owner = section[name_at : name_at + namesz].rstrip(b"\x00")
        found.append((owner, kind, section[desc_at : desc_at + descsz]))
        at = desc_at + (descsz + 3) // 4 * 4
    return found


def _script(rule: ScriptRule) -> tuple[str, str]:
    """Configuration Manager's rule: present iff exit 0 *and* something on stdout."""
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", rule.command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return ERROR, f"could not start: {exc.strerror or exc}"
    try:
        out, _ = process.communicate(timeout=rule.seconds)
    except subprocess.TimeoutExpired:
        stop_process_tree(process)  # type: ignore[arg-type]
        return ERROR, f"did not finish within {rule.seconds} seconds"
    text = out.decode("utf-8", "replace").strip()
    shown = f"exit code {process.returncode}, stdout {text[:100]!r}"
    return (PRESENT if process.returncode == 0 and text else ABSENT), shown


def _manifest(rule: ManifestRule, manifest: Manifest | None) -> tuple[str, str]:
    if manifest is None:
        return ERROR, "the package's manifest could not be obtained"
    root = Path(rule.target)
    for entry in manifest.files:
        target = root.joinpath(*entry.path.split("/"))
        if not target.is_file():
            return ABSENT, f"{entry.path} is missing"
        if target.stat().st_size != entry.size or _sha256(target) != entry.sha256:
            return ABSENT, f"{entry.path} differs from the package"
    return PRESENT, f"all {len(manifest.files)} files present with their hashes"


def detection_properties(result: DetectionResult) -> dict[str, Any]:
    """What a status message carries about a detection."""
    return {
        "detected": result.detected,
        "detection": result.result,
        "evidence": result.evidence_list(),
    }
