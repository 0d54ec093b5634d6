"""The client's only conversation with the site: the client API of docs/protocol.md over httpx.

Everything else in the client works against the `SiteApi` protocol, so it can be exercised
with real DPs and signed objects without a site. Errors come back as typed QMErrors; a site
that cannot be reached is SiteUnreachable, which stops a run rather than failing deployments.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from quartermaster.core.client_protocol import CLIENT_API, POLL_AFTER_HEADER
from quartermaster.core.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    QMError,
    Unauthorized,
)
from quartermaster.core.tls import certificate_problem

_ERRORS: dict[str, type[QMError]] = {
    "invalid_input": InvalidInput,
    "not_found": NotFound,
    "conflict": Conflict,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "integrity": IntegrityError,
    "hash_mismatch": IntegrityError,
    "bad_signature": IntegrityError,
}


class SiteUnreachable(QMError):
    code = "site_unreachable"
    http_status = 502


class UntrustedCertificate(SiteUnreachable):
    """The site answered with a TLS certificate that the pinned CA did not issue."""

    code = "untrusted_certificate"


class NotApproved(QMError):
    """The site knows this client but will not serve it yet (pending approval) or at all."""

    code = "not_approved"
    http_status = 403


class RekeyRequired(QMError):
    """The administrator asked this client to replace its secret (`qm client rekey`)."""

    code = "rekey_required"
    http_status = 401


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

    @property
    def poll_after(self) -> int | None:
        """The soonest "poll again within N seconds" the site asked for in this run."""
        ...


class SiteLink:
    """One HTTP client per agent run; `secret` is empty only for registration."""

    def __init__(
        self,
        site_url: str,
        secret: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context` pins the CA given at registration; None trusts the system's CAs."""
        self.site_url = site_url.rstrip("/")
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._http = httpx.Client(
            base_url=self.site_url,
            headers=headers,
            timeout=timeout,
            verify=ssl_context if ssl_context is not None else True,
        )
        self._poll_after: int | None = None

    @property
    def poll_after(self) -> int | None:
        return self._poll_after

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SiteLink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register(self, facts: dict[str, Any]) -> dict[str, Any]:
        return _object(self._request("POST", "/register", json=facts))

    def policy(self, etag: str) -> PolicyAnswer:
        headers = {"If-None-Match": etag} if etag else {}
        response = self._request("GET", "/policy", headers=headers)
        etag_now = response.headers.get("ETag", "")
        if response.status_code == 304:
            return PolicyAnswer(None, etag_now or etag)
        return PolicyAnswer(_object(response), etag_now)

    def manifest(self, package_hash: str) -> Any:
        return _object(self._request("GET", f"/manifests/{package_hash}"))

    def locations(self, package_hash: str) -> list[Location]:
        entries = _object(self._request("GET", f"/locations/{package_hash}")).get("locations")
        if not isinstance(entries, list):
            raise QMError("the site's location answer has no list of locations")
        return [
            Location(str(e["dp"]), str(e["url"]), str(e.get("kind") or ""))
            for e in entries
            if isinstance(e, dict) and e.get("dp") and e.get("url")
        ]

    def send_status(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return _object(self._request("POST", "/status", json={"messages": messages}))

    def inventory(self, facts: dict[str, Any]) -> bool:
        """Report this computer's facts now; True if its collection membership changed."""
        return (
            _object(self._request("POST", "/inventory", json=facts)).get("membership_changed")
            is True
        )

    def rekey(self) -> str:
        """Trade the current secret for a new one and use it from now on."""
        secret = str(_object(self._request("POST", "/rekey")).get("client_secret") or "")
        if not secret.startswith("qmc_"):
            raise QMError("the site answered a rekey request without a new secret")
        self._http.headers["Authorization"] = f"Bearer {secret}"
        return secret

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, CLIENT_API + path, **kwargs)
        except httpx.HTTPError as exc:
            problem = certificate_problem(exc)
            if problem:
                raise UntrustedCertificate(
                    f"the site at {self.site_url} presented a TLS certificate this client "
                    f"does not trust ({problem})",
                    "the client trusts only the CA pinned at registration (--ca-file); if the "
                    "site's certificate changed to another CA, re-register with "
                    "`qm client register --force --ca-file NEW_CA`",
                ) from None
            raise SiteUnreachable(
                f"cannot reach the site at {self.site_url}: {exc}",
                "check the site URL in client.json and that the site server "
                "is running; the agent tries again at its next run",
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        hint = response.headers.get(POLL_AFTER_HEADER, "")
        if hint.isdigit():  # `qm client notify` (docs/protocol.md)
            seconds = int(hint)
            self._poll_after = (
                seconds if self._poll_after is None else min(self._poll_after, seconds)
            )
        return response


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise QMError(
            f"the site answered {response.request.url.path} with something other "
            "than a JSON object",
            "check that the site URL points at a site server",
        )
    return body


def _error(response: httpx.Response) -> QMError:
    try:
        detail = response.json().get("error") or {}
    except (ValueError, AttributeError):
        detail = {}
    message = str(detail.get("message") or f"HTTP {response.status_code}")
    hint = str(detail.get("hint") or "")
    code = str(detail.get("code"))
    if code in ("approval_pending", "client_blocked"):
        return NotApproved(message, hint or "an administrator approves it with `qm client approve`")
    if code == "rekey_required":
        return RekeyRequired(message, hint)
    if response.status_code == 401:
        return Unauthorized(
            f"the site refused this client's credentials: {message}",
            "re-register with `qm client register --home DIR --site URL --force`",
        )
    error_class = _ERRORS.get(str(detail.get("code")), QMError)
    return error_class(f"the site answered {response.status_code}: {message}", hint)
