"""Bounds on the free-form JSON a client sends (its properties, a status message's
properties): whatever is stored must stay small and be readable by every list that shows it.

Anyone who can reach the site may register, so these values come from strangers: one
client's properties nested 500 deep once made `GET /api/v1/clients` fail for good.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from quartermaster.core.errors import InvalidInput

MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class JsonLimits:
    what: str  # e.g. "client properties", named in every refusal
    max_bytes: int
    max_depth: int  # the top-level object is depth 1
    max_keys: int  # keys of every object in it, together
    max_text: int  # characters of one key or string


CLIENT_PROPERTIES = JsonLimits("client properties", 16 * 1024, 3, 200, 1024)
STATUS_PROPERTIES = JsonLimits("status message properties", 64 * 1024, 6, 500, 4096)


def check_json(value: Any, limits: JsonLimits) -> dict[str, Any]:
    """`value` if it is an object within `limits`; else 422 naming the limit exceeded."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{limits.what} must be a JSON object")
    keys = _walk(value, limits, 1)
    if keys > limits.max_keys:
        raise _refused(limits, f"more than {limits.max_keys} keys")
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > limits.max_bytes:
        raise _refused(limits, f"more than {limits.max_bytes} bytes")
    return value


def readable(value: Any, limits: JsonLimits) -> Any:
    """A stored value as a list may show it: one stored before these limits existed, that
    breaks them, is replaced by a note rather than failing the whole list."""
    try:
        return check_json(value, limits)
    except InvalidInput as exc:
        return {"unreadable": exc.message}


def _walk(value: Any, limits: JsonLimits, depth: int) -> int:
    """Check types, depth and text; returns the number of object keys seen."""
    if depth > limits.max_depth:
        raise _refused(limits, f"nesting deeper than {limits.max_depth} levels")
    keys = 0
    if isinstance(value, dict):
        for key, item in value.items():
            _text(key, limits)
            keys += 1 + _child(item, limits, depth)
            if keys > limits.max_keys:
                raise _refused(limits, f"more than {limits.max_keys} keys")
    elif isinstance(value, list):
        for item in value:
            keys += _child(item, limits, depth)
    return keys


def _child(item: Any, limits: JsonLimits, depth: int) -> int:
    if isinstance(item, dict | list):
        return _walk(item, limits, depth + 1)
    if isinstance(item, str):
        _text(item, limits)
    elif isinstance(item, bool) or item is None:
        pass
    elif isinstance(item, int):
        if not -MAX_INT - 1 <= item <= MAX_INT:
            raise _refused(limits, "a number outside 64 bits")
    elif isinstance(item, float):
        if not math.isfinite(item):
            raise _refused(limits, "a number that is not finite")
    else:
        raise _refused(limits, f"a value of type {type(item).__name__}")
    return 0


def _text(text: Any, limits: JsonLimits) -> None:
    if not isinstance(text, str):
        raise _refused(limits, "a key that is not text")
    if len(text) > limits.max_text:
        raise _refused(limits, f"text longer than {limits.max_text} characters")
    if "\x00" in text:
        raise _refused(limits, "a NUL character")


def _refused(limits: JsonLimits, problem: str) -> InvalidInput:
    return InvalidInput(
        f"{limits.what} exceed a limit: {problem}",
        f"{limits.what} allow at most {limits.max_bytes} bytes, {limits.max_depth} levels, "
        f"{limits.max_keys} keys, text of {limits.max_text} characters, and only text, "
        "numbers, true, false, null, lists and objects",
    )
