"""Peer tickets: the site's signed word that a client may fetch from the peers of a boundary.

The site puts a ticket in each location answer that lists peers (site/distribution/peers.py);
the client sends it in the path of its request to the peer; the peer checks it with the site
keys it already trusts for policy. The bytes need no such trust (every blob is verified by
its hash), but a peer must not tell strangers which content it holds: that would leak what
a computer has installed.

A ticket is a signed envelope (core/signing.py) as canonical JSON, base64url without padding,
over the payload {"type": "peer_ticket", "client_id", "boundary", "expires"} (Unix seconds).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from quartermaster.core.canonical import canonical_json
from quartermaster.core.errors import QMError, SignatureError
from quartermaster.core.signing import PublicKey, verify_envelope

MAX_TICKET = 4096  # characters; a real ticket is under 600
MAX_LIFETIME = 86400  # a ticket that claims to live longer than this is refused


class TicketRefused(QMError):
    """The ticket is missing, damaged, not signed by the site, expired, or for another
    boundary."""

    code = "ticket_refused"


def make_ticket(signed: dict[str, Any]) -> str:
    """A signed envelope as one URL-safe path segment."""
    return base64.urlsafe_b64encode(canonical_json(signed)).decode().rstrip("=")


def read_ticket(
    text: str, trusted: dict[str, PublicKey], boundary: str, now: float
) -> dict[str, Any]:
    """The ticket's payload if the site signed it for `boundary` and it is valid at `now`."""
    if not text or len(text) > MAX_TICKET:
        raise TicketRefused("no usable peer ticket", "ask the site for locations again")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        envelope = json.loads(raw)
    except (binascii.Error, ValueError):
        raise TicketRefused("the peer ticket is not base64url JSON") from None
    try:
        payload = verify_envelope(envelope, trusted)
    except SignatureError as exc:
        raise TicketRefused(f"the peer ticket is not the site's: {exc.message}") from None
    expires = payload.get("expires")
    if payload.get("type") != "peer_ticket" or not isinstance(expires, int):
        raise TicketRefused("the signed object is not a peer ticket")
    if payload.get("boundary") != boundary or not boundary:
        raise TicketRefused("the peer ticket is for another boundary")
    if not now <= expires <= now + MAX_LIFETIME:
        raise TicketRefused("the peer ticket has expired", "ask the site for locations again")
    return payload
