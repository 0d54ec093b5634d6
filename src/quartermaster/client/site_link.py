"""The client's only conversation with the site: the client API of docs/protocol.md.

Everything else in the client works against the `SiteApi` protocol, so it can be exercised
with real DPs and signed objects without a site. The transport, TLS, proxies and the reading
of errors are `core.site_transport`'s; here are the routes and the client's secret. A site
that cannot be reached or fails (SiteUnreachable and its kinds) stops a run rather than
failing deployments.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from quartermaster.core.client_protocol import CLIENT_API, POLL_AFTER_HEADER
from quartermaster.core.errors import QMError
from quartermaster.core.proxies import ProxySettings
from quartermaster.core.site_transport import (
    Advice,
    NotApproved,
    RekeyRequired,
    SiteTransport,
    SiteUnreachable,
    UntrustedCertificate,
)

__all__ = [
    "Location",
    "NotApproved",
    "PolicyAnswer",
    "RekeyRequired",
    "SiteApi",
    "SiteLink",
    "SiteUnreachable",
    "UntrustedCertificate",
]

ADVICE = Advice(
    who="this client",
    unreachable="check the site URL in client.json and that the site server is running; "
    "the agent tries again at its next run",
    untrusted="the client trusts only the CA pinned at registration (--ca-file); if the "
    "site's certificate changed to another CA, re-register with "
    "`qm client register --force --ca-file NEW_CA`",
    credential="re-register with `qm client register --home DIR --site URL --force`",
)
# The longest a client waits for the elected client of its boundary (the site's lease,
# at most an hour, ends the wait sooner: then this client is elected).
MAX_LOCATION_WAIT = 3600.0

# Registration has no client.json yet, and nothing retries it: the user runs it again.
REGISTRATION_ADVICE = Advice(
    who="this client",
    unreachable="check the URL given with --site and that `qm site serve` is running there; "
    "nothing was registered: run the command again when the site answers",
    untrusted="an https site needs its CA: pass the CA's PEM file with --ca-file",
    credential=ADVICE.credential,
)


@dataclass(frozen=True)
class Location:
    dp: str
    url: str
    kind: str = ""


@dataclass(frozen=True)
class PolicyAnswer:
    envelope: Any  # None when the site answered 304 Not Modified
    etag: str

    @property
    def not_modified(self) -> bool:
        return self.envelope is None


class SiteApi(Protocol):
    def policy(self, etag: str) -> PolicyAnswer: ...

    def manifest(self, package_hash: str) -> Any: ...

    def locations(self, package_hash: str) -> list[Location]: ...

    def send_status(self, messages: list[dict[str, Any]]) -> object: ...

    def rekey(self) -> str: ...

    def inventory(self, facts: dict[str, Any]) -> bool: ...

    def roots(self, after: int) -> list[Any]: ...

    def trust_log(self, after: int, upto: int) -> list[Any]: ...

    @property
    def poll_after(self) -> int | None:
        """The soonest "poll again within N seconds" the site asked for in this run."""
        ...


class SiteLink:
    """One HTTP session per agent run; `secret` is empty only for registration."""

    def __init__(
        self,
        site_url: str,
        secret: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxySettings | None = None,
        advice: Advice = ADVICE,
    ) -> None:
        """`ssl_context` pins the CA given at registration; None trusts the system's CAs."""
        self._site = SiteTransport(
            site_url,
            advice,
            credential=secret,
            timeout=timeout,
            ssl_context=ssl_context,
            proxies=proxies,
        )
        self.site_url = self._site.site_url
        self._poll_after: int | None = None
        self.sleep: Callable[[float], None] = time.sleep  # between location asks

    @property
    def poll_after(self) -> int | None:
        return self._poll_after

    def close(self) -> None:
        self._site.close()

    def __enter__(self) -> SiteLink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register(self, facts: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", "/register", json=facts)

    def policy(self, etag: str) -> PolicyAnswer:
        headers = {"If-None-Match": etag} if etag else {}
        response = self._request("GET", "/policy", headers=headers)
        etag_now = response.headers.get("ETag", "")
        if response.status_code == 304:
            return PolicyAnswer(None, etag_now or etag)
        return PolicyAnswer(self._site.json_object(response), etag_now)

    def manifest(self, package_hash: str) -> Any:
        return self._object("GET", f"/manifests/{package_hash}")

    def locations(self, package_hash: str) -> list[Location]:
        """Where to download from. While another client of this boundary was elected to
        fetch the version from a DP, the site says to wait; ask again until it lists a peer
        that holds it, or elects this client (its lease bounds the wait)."""
        answer = self._object("GET", f"/locations/{package_hash}")
        waited = 0.0
        while isinstance(answer.get("wait_seconds"), int) and waited < MAX_LOCATION_WAIT:
            pause = min(max(int(answer["wait_seconds"]), 1), 10)
            self.sleep(pause)
            waited += pause
            answer = self._object("GET", f"/locations/{package_hash}")
        entries = answer.get("locations")
        if not isinstance(entries, list):
            raise QMError("the site's location answer has no list of locations")
        return [
            Location(str(e["dp"]), str(e["url"]), str(e.get("kind") or ""))
            for e in entries
            if isinstance(e, dict) and e.get("dp") and e.get("url")
        ]

    def send_status(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return self._object("POST", "/status", json={"messages": messages})

    def peer_report(self, body: dict[str, Any]) -> dict[str, Any]:
        """What this peer serves (client/peer_server.py); the site answers whether it may."""
        return self._object("POST", "/peer", json=body)

    def inventory(self, facts: dict[str, Any]) -> bool:
        """Report this computer's facts now; True if its collection membership changed."""
        return self._object("POST", "/inventory", json=facts).get("membership_changed") is True

    def roots(self, after: int) -> list[Any]:
        """Root metadata versions above `after`, oldest first (the client walks the chain)."""
        found = self._object("GET", "/roots", params={"after": after}).get("roots")
        return found if isinstance(found, list) else []

    def trust_log(self, after: int, upto: int) -> list[Any]:
        """Trust log entries after+1 .. upto, to check a new head extends the one seen."""
        params = {"after": after, "upto": upto}
        found = self._object("GET", "/trust-log", params=params).get("entries")
        return found if isinstance(found, list) else []

    def rekey(self) -> str:
        """Trade the current secret for a new one and use it from now on."""
        secret = str(self._object("POST", "/rekey").get("client_secret") or "")
        if not secret.startswith("qmc_"):
            raise QMError("the site answered a rekey request without a new secret")
        self._site.use_credential(secret)
        return secret

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._site.json_object(self._request(method, path, **kwargs))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._site.request(method, CLIENT_API + path, **kwargs)
        hint = response.headers.get(POLL_AFTER_HEADER, "")
        if hint.isdigit():  # `qm client notify` (docs/protocol.md)
            seconds = int(hint)
            self._poll_after = (
                seconds if self._poll_after is None else min(self._poll_after, seconds)
            )
        return response
