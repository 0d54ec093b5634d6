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


#: What each kind of ID looks like on a site with code QM1, for hints.
ID_EXAMPLES = {"package ID": "QM100001", "deployment ID": "QM120000", "application ID": "QM140000"}


def normalize_object_id(value: str) -> str:
    """An ID as printed (QM100001) or typed in lower case (qm100001): the same object.
    Anything that is not an ID comes back as it was, for the error to quote."""
    upper = value.strip().upper()
    return upper if _OBJECT_ID.match(upper) else value


def check_object_id(value: str, what: str = "package ID") -> str:
    """The ID in capitals; InvalidInput with an example of the right kind when it is none."""
    value = normalize_object_id(value or "")
    if not _OBJECT_ID.match(value):
        example = ID_EXAMPLES.get(what, "QM100001")
        raise InvalidInput(
            f"{what} {value!r} is not valid",
            f"{'an' if what[0] in 'aeiou' else 'a'} {what} is the site code followed by 5 "
            f"hex digits, e.g. {example}",
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
