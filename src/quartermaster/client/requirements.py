"""Program requirements (OS, architecture, free disk): checked before anything is downloaded."""

from __future__ import annotations

from typing import Any

from quartermaster.client.machine_facts import MachineFacts

# Names the same processor family goes by on different systems.
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "arm64",
    "i686": "x86",
    "i386": "x86",
}


def _arch(name: str) -> str:
    lowered = name.lower()
    return _ARCH_ALIASES.get(lowered, lowered)


def unmet_requirement(requirements: dict[str, Any], facts: MachineFacts) -> str:
    """Why this computer does not meet `requirements`, or "" when it does."""
    systems = [str(s).lower() for s in requirements.get("os") or []]
    if systems and facts.os.lower() not in systems:
        return f"operating system {facts.os} is not one of {', '.join(systems)}"
    architectures = [str(a) for a in requirements.get("architecture") or []]
    if architectures and _arch(facts.architecture) not in {_arch(a) for a in architectures}:
        return f"architecture {facts.architecture} is not one of {', '.join(architectures)}"
    min_free = requirements.get("min_free_disk_mb")
    if isinstance(min_free, int) and facts.free_disk_mb < min_free:
        return f"{facts.free_disk_mb} MB free disk, {min_free} MB required"
    return ""
