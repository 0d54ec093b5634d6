"""Identifiers administrators already know: site codes, package IDs, deployment IDs, GUIDs."""

from __future__ import annotations

import re
import uuid

from quartermaster.core.errors import InvalidInput

_SITE_CODE = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_OBJECT_ID = re.compile(r"^([A-Z][A-Z0-9]{2})([0-9A-F]{5})$")

#: Deployment IDs start here, as SMS advertisement IDs did, so they never look like packages.
DEPLOYMENT_ID_START = 0x20000


def check_site_code(code: str) -> str:
    if not _SITE_CODE.match(code):
        raise InvalidInput(
            f"site code {code!r} is not valid",
            "use three characters: a capital letter, then capital letters or digits (e.g. QM1)",
        )
    return code


def object_id(site_code: str, number: int) -> str:
    if not 0 < number <= 0xFFFFF:
        raise InvalidInput(f"object number {number} is out of range for a 5-hex-digit ID")
    return f"{site_code}{number:05X}"


def check_object_id(value: str, what: str = "package ID") -> str:
    if not _OBJECT_ID.match(value or ""):
        raise InvalidInput(
            f"{what} {value!r} is not valid",
            "an ID is the site code followed by 5 hex digits, e.g. QM100001",
        )
    return value


def new_client_id() -> str:
    return str(uuid.uuid4())


def check_client_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(
            f"client ID {value!r} is not a GUID", "use the ID `qm client register` printed"
        ) from None
