"""The peer cache: clients that serve their verified cache to the other clients of their
boundary, so a branch office moves one copy over its WAN link, not one per client.

A client run with `--peer-listen` reports to the site (`POST /api/client/v1/peer`) the port
it listens on, whether it is on battery or on a metered network, and which package versions
it holds whole and verified. The site decides whether it serves (the site-wide switch
`peer_cache`, a per-boundary override, never on battery or metered, never while suspended)
and answers with its boundary.

A client's **boundary** is the most specific CIDR range, among the DPs' boundaries and the
peer-cache overrides, that holds the address it reports from. Peers are only ever listed to
clients of the same boundary, with a **ticket**: a short-lived statement signed by the site
key ("client C of boundary B may fetch until T") that the serving peer checks against the
site keys it already trusts, so a stranger, or a client of another boundary, gets nothing.

When no peer of the boundary holds a version yet, one client is **elected** (a lease per
boundary and version) and sent to the DPs; the others are told to wait briefly and ask
again, and then find the elected client listed as a peer. A lease that runs out (the
elected client went away) elects the next client that asks.

A peer reported for bad bytes (10075 naming `peer:<client>`) is suspended at once: its
holdings are withdrawn and it is offered again only after it re-hashed its cache.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from quartermaster.core.errors import InvalidInput
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.peer_ticket import make_ticket
from quartermaster.site.models import (
    DistributionPoint,
    Peer,
    PeerFetchLease,
    PeerHolding,
    utcnow,
)
from quartermaster.site.settings import get_settings
from quartermaster.site.status.site_messages import raise_status

PEER_PREFIX = "peer:"  # how a peer is named where a DP would be (locations, 10075)
TICKET_SECONDS = 900  # a ticket outlives one download of a version, not a day
WAIT_SECONDS = 2  # how long a waiting client sleeps before it asks again
STALE = timedelta(days=1)  # a peer that has not reported for this long is not listed
MAX_HOLDINGS = 5000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LEASES = cast(Table, PeerFetchLease.__table__)


def check_overrides(entries: list[Any]) -> list[dict[str, Any]]:
    """Per-boundary overrides as stored: [{"boundary": CIDR, "peer_cache": bool}]."""
    checked = []
    for index, entry in enumerate(entries):
        where = f"peer cache override {index + 1}"
        if not isinstance(entry, dict) or set(entry) != {"boundary", "peer_cache"}:
            raise InvalidInput(
                f"{where} is not {{'boundary': CIDR, 'peer_cache': true|false}}",
                'e.g. [{"boundary": "10.1.0.0/16", "peer_cache": true}]',
            )
        if not isinstance(entry["peer_cache"], bool):
            raise InvalidInput(f"{where}: peer_cache is true or false")
        try:
            network = ipaddress.ip_network(str(entry["boundary"]), strict=False)
        except ValueError:
            raise InvalidInput(f"{where}: {entry['boundary']!r} is not a CIDR range") from None
        checked.append({"boundary": str(network), "peer_cache": entry["peer_cache"]})
    return checked


def _addresses(texts: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = []
    for text in texts:
        try:
            found.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return found


def boundary_of(session: Session, address: str, settings: dict[str, Any]) -> str | None:
    """The most specific DP boundary or override range that holds `address`, or None."""
    found = _addresses([address])
    if not found:
        return None
    candidates: set[str] = {str(o["boundary"]) for o in settings["peer_cache_boundaries"]}
    for boundaries in session.scalars(
        select(DistributionPoint.boundaries).where(DistributionPoint.state == "active")
    ):
        candidates.update(str(b) for b in boundaries or [])
    best: Network | None = None
    for text in candidates:
        network = ipaddress.ip_network(text, strict=False)
        inside = network.version == found[0].version and found[0] in network
        if inside and (best is None or network.prefixlen > best.prefixlen):
            best = network
    return str(best) if best is not None else None


def enabled_for(boundary: str | None, settings: dict[str, Any]) -> bool:
    """The most specific override that covers the boundary, else the site-wide switch."""
    if boundary is None:
        return False
    network = ipaddress.ip_network(boundary)
    best: tuple[int, bool] | None = None
    for entry in settings["peer_cache_boundaries"]:
        cover = ipaddress.ip_network(str(entry["boundary"]))
        covers = cover.version == network.version and network.subnet_of(cover)  # type: ignore[arg-type]
        if covers and (best is None or cover.prefixlen > best[0]):
            best = (cover.prefixlen, bool(entry["peer_cache"]))
    return best[1] if best is not None else bool(settings["peer_cache"])


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def report(session: Session, client_id: str, address: str, body: dict[str, Any]) -> dict[str, Any]:
    """A peer's report: record it, decide whether it serves, answer with its boundary."""
    settings = get_settings(session)
    boundary = boundary_of(session, address, settings)
    holds = _holdings(body.get("holds"))
    peer = session.get(Peer, client_id)
    if peer is None:
        peer = Peer(client_id=client_id, suspended=False)
        session.add(peer)
    if peer.suspended and body.get("revalidated") is True:
        peer.suspended = False
        raise_status(session, 2371, f"{PEER_PREFIX}{client_id}", client_id=client_id)
    reason = _refusal(boundary, settings, body, peer.suspended)
    peer.url = _url(address, int(body["port"]))
    peer.boundary = boundary or ""
    peer.serving = reason == ""
    peer.reported = utcnow()
    session.flush()
    session.execute(delete(PeerHolding).where(PeerHolding.client_id == client_id))
    if not peer.suspended and holds:
        session.execute(
            insert(PeerHolding), [{"client_id": client_id, "package_hash": h} for h in holds]
        )
    # A lease stays until it runs out even once its holder reports the version: a client
    # that looked for holders just before this report must find the lease, not take a new
    # one (and send a second copy over the WAN link); with holders listed it is not asked.
    session.execute(delete(PeerFetchLease).where(PeerFetchLease.expires < utcnow()))
    return {
        "serve": peer.serving,
        "boundary": boundary or "",
        "reason": reason,
        "revalidate": peer.suspended,
    }


def _holdings(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HOLDINGS:
        raise InvalidInput(f"holds is a list of at most {MAX_HOLDINGS} package hashes")
    if not all(isinstance(h, str) and is_sha256_hex(h) for h in value):
        raise InvalidInput("holds lists package hashes (64 hex digits)")
    return sorted(set(value))


def _refusal(
    boundary: str | None, settings: dict[str, Any], body: dict[str, Any], suspended: bool
) -> str:
    """Why this peer may not serve now ("" when it may)."""
    if boundary is None:
        return "the client's address is in no boundary"
    if not enabled_for(boundary, settings):
        return f"the peer cache is off for boundary {boundary}"
    if body.get("on_battery"):
        return "the computer runs on battery"
    if body.get("metered"):
        return "the computer is on a metered network"
    if suspended:
        return "the peer served bad bytes and must re-validate its cache"
    return ""


def locate(
    session: Session,
    sign: Any,
    client_id: str,
    package_hash: str,
    address: str,
    dps: list[dict[str, str]],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The location answer: peers of the client's boundary that hold the version first, then
    `dps`; or, when none holds it and another client was elected to fetch it, a wait."""
    now = now or utcnow()
    settings = get_settings(session)
    boundary = boundary_of(session, address, settings)
    if boundary is None or not enabled_for(boundary, settings):
        return {"locations": dps}
    peers = _holders(session, boundary, package_hash, client_id, now)
    if peers:
        ticket = make_ticket(
            sign(
                {
                    "type": "peer_ticket",
                    "client_id": client_id,
                    "boundary": boundary,
                    "expires": int((now + timedelta(seconds=TICKET_SECONDS)).timestamp()),
                }
            )
        )
        start = int(client_id.replace("-", "")[:8] or "0", 16) % len(peers)  # spread the load
        ordered = peers[start:] + peers[:start]
        listed = [
            {"dp": f"{PEER_PREFIX}{peer_id}", "url": f"{url}/peer/{ticket}", "kind": "peer"}
            for peer_id, url in ordered
        ]
        return {"locations": listed + dps}
    lease = timedelta(seconds=int(settings["peer_lease_seconds"]))
    if not _can_serve(session, client_id, boundary):
        # A client that will not serve what it fetches is never elected: the others would
        # wait for it in vain. It waits for an elected peer, or goes to the DPs.
        current = session.get(PeerFetchLease, (boundary, package_hash))
        if current is None or current.expires <= now:
            return {"locations": dps}
        left = int((current.expires - now).total_seconds()) + 1
        return {"locations": dps, "wait_seconds": max(1, min(WAIT_SECONDS, left))}
    remaining = _elect(session, boundary, package_hash, client_id, now, lease)
    if remaining is None:
        return {"locations": dps, "elected": True}
    return {"locations": dps, "wait_seconds": max(1, min(WAIT_SECONDS, remaining))}


def _can_serve(session: Session, client_id: str, boundary: str) -> bool:
    peer = session.get(Peer, client_id)
    return peer is not None and peer.serving and not peer.suspended and peer.boundary == boundary


def _holders(
    session: Session, boundary: str, package_hash: str, client_id: str, now: datetime
) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Peer.client_id, Peer.url)
        .join(PeerHolding, PeerHolding.client_id == Peer.client_id)
        .where(
            PeerHolding.package_hash == package_hash,
            Peer.boundary == boundary,
            Peer.serving.is_(True),
            Peer.suspended.is_(False),
            Peer.client_id != client_id,
            Peer.reported > now - STALE,
        )
        .order_by(Peer.client_id)
    ).all()
    return [(str(peer_id), str(url)) for peer_id, url in rows]


def _elect(
    session: Session,
    boundary: str,
    package_hash: str,
    client_id: str,
    now: datetime,
    lease: timedelta,
) -> int | None:
    """None when `client_id` holds (or now took) the lease; else the seconds it has left.

    One statement decides, so two site processes answering two clients at the same moment
    cannot both elect: an insert that a concurrent one beat fails, an update only takes a
    lease that ran out (or is the caller's own)."""
    key = {"boundary": boundary, "package_hash": package_hash}
    values = {**key, "client_id": client_id, "expires": now + lease}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = session.execute(
        dialect.insert(_LEASES).values(**values).on_conflict_do_nothing(index_elements=list(key))
    )
    if cast(Any, inserted).rowcount == 1:
        return None
    taken = session.execute(
        update(_LEASES)
        .where(
            _LEASES.c.boundary == boundary,
            _LEASES.c.package_hash == package_hash,
            or_(_LEASES.c.expires <= now, _LEASES.c.client_id == client_id),
        )
        .values(client_id=client_id, expires=now + lease)
    )
    if cast(Any, taken).rowcount == 1:
        return None
    current = session.get(PeerFetchLease, (boundary, package_hash))
    if current is None:  # removed since: the holder reported; the next ask finds it
        return 1
    return int((current.expires - now).total_seconds()) + 1


def report_bad_peer(
    session: Session, peer_name: str, reporter_id: str, package_hash: str, address: str
) -> bool:
    """A client found bad bytes on a peer: withdraw the peer until it re-validates.

    Only a client of the peer's own boundary can have been sent there, so only its report
    counts (a stranger cannot take a peer out of service)."""
    peer = session.get(Peer, peer_name.removeprefix(PEER_PREFIX))
    if peer is None or peer.suspended or peer.client_id == reporter_id:
        return False
    settings = get_settings(session)
    if boundary_of(session, address, settings) != peer.boundary:
        return False
    peer.suspended, peer.serving = True, False
    session.execute(delete(PeerHolding).where(PeerHolding.client_id == peer.client_id))
    raise_status(session, 2370, peer_name, reporter_id, package_hash, client_id=peer.client_id)
    return True
