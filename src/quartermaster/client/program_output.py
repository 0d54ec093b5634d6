"""The tail of a program's own output, with secrets from its command line masked.

An exit code alone rarely says why an installer failed; its last lines usually do. The
agent keeps every run's stdout and stderr in logs/programs/ and sends the last
`TAIL_BYTES` of a failed run with its status message, so the administrator reads the reason
at the site. A command line often carries a password (`--password=...`, `-p ...`,
`https://user:secret@host/...`); every such value is replaced by `MASK` wherever it appears,
in the local log's header line and in the tail sent to the site.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

TAIL_BYTES = 64 * 1024
MASK = "********"
MIN_SECRET = 3  # shorter values would mask ordinary words everywhere

_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|api[-_]?key|private[-_]?key|credential|auth",
    re.IGNORECASE,
)
_NAMED_VALUE = re.compile(r"^[-/]{0,2}(?P<name>[A-Za-z_][\w.-]*)[=:](?P<value>.+)$", re.DOTALL)
_OPTION = re.compile(r"^(-{1,2}|/)[A-Za-z][\w.-]*$")
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:(?P<value>[^/@\s]+)@")


def command_secrets(command: str) -> list[str]:
    """Values in `command` that look like secrets, longest first."""
    try:
        tokens = shlex.split(command, posix=True)
    except ValueError:  # unbalanced quotes: still find what whitespace splitting shows
        tokens = command.split()
    found: set[str] = set()
    for index, token in enumerate(tokens):
        named = _NAMED_VALUE.match(token)
        if named and _SECRET_NAME.search(named["name"]):
            found.add(named["value"])
        elif (
            _OPTION.match(token)
            and _SECRET_NAME.search(token)
            and index + 1 < len(tokens)
            and not tokens[index + 1].startswith("-")
        ):
            found.add(tokens[index + 1])
        found.update(m["value"] for m in _URL_CREDENTIALS.finditer(token))
    return sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def masked_command(command: str) -> str:
    return mask(command, command_secrets(command))


def read_tail(path: Path, start: int, command: str, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes written to `path` after offset `start`, as text, masked.

    Cut at a byte boundary, so a partial first character is dropped rather than guessed.
    """
    try:
        with open(path, "rb") as handle:
            end = handle.seek(0, 2)
            handle.seek(max(start, end - limit))
            data = handle.read(limit)
    except OSError:
        return ""
    text = mask(data.decode("utf-8", errors="replace"), command_secrets(command))
    encoded = text.encode("utf-8")
    if len(encoded) > limit:  # a mask longer than the secret it hides
        text = encoded[len(encoded) - limit :].decode("utf-8", errors="ignore")
    if end - start > limit:
        text = text.lstrip("\ufffd")
    return text
