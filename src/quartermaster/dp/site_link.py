"""The only part of a distribution point that talks to the site (`/api/dp/v1`).

Everything the site says is parsed and checked here, so the agent works on typed values and
a protocol change touches one file; the transport, TLS, proxies and the reading of errors are
`core.site_transport`'s. The data plane (blobs) does not pass through here.
"""

from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from quartermaster.core.errors import IntegrityError, QMError, Unauthorized
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.proxies import ProxySettings
from quartermaster.core.signing import PublicKey
from quartermaster.core.site_transport import (
    Advice,
    SiteError,
    SiteRefused,
    SiteTransport,
    SiteUnreachable,
    UntrustedCertificate,
)

__all__ = [
    "Assignment",
    "AssignmentList",
    "ContentReport",
    "EnrollmentRefused",
    "Report",
    "SiteError",
    "SiteLink",
    "SiteRefused",
    "SiteUnreachable",
    "UntrustedCertificate",
]

API = "/api/dp/v1"
ADVICE = Advice(
    who="this DP",
    unreachable="check the site URL and that the site server is running; the DP retries",
    untrusted="the DP trusts only the CA pinned with --ca-file; start it with "
    "--ca-file NEW_CA if the site's certificate moved to another CA",
    credential="the DP credential was refused; re-enroll the DP with a new token "
    "(delete dp.json in its home)",
)


class EnrollmentRefused(Unauthorized):
    code = "enrollment_refused"


@dataclass(frozen=True)
class Enrollment:
    dp: str
    credential: str
    site_code: str
    signing_keys: tuple[PublicKey, ...]


@dataclass(frozen=True)
class Assignment:
    package_id: str
    source_version: int
    package_hash: str
    state: str  # the site's view: pending, distributing, installed, failed, validation_failed
    validate: bool

    @property
    def label(self) -> str:
        return f"{self.package_id} version {self.source_version} ({self.package_hash[:12]})"


@dataclass(frozen=True)
class AssignmentList:
    dp: str
    validate_interval: int  # seconds; 0 or less: never on a schedule
    sources: tuple[str, ...]
    assignments: tuple[Assignment, ...]
    signing_keys: Any = None  # the signed key list envelope (checked by the agent), if sent
    # Seconds a version no longer assigned stays in the store: downloads may be under way.
    grace: float = 0.0
    library: str = ""  # the site's content library: the one source given the DP's credential


@dataclass
class ContentReport:
    """One package version's state on this DP, as `POST /report` carries it."""

    package_hash: str
    state: str  # distributing, installed, failed
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_transferred: int = 0
    reason: str = ""
    validated: bool = False
    bad_blobs: int = 0


@dataclass
class Report:
    free_bytes: int
    used_bytes: int
    contents: list[ContentReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "free_bytes": self.free_bytes,
            "used_bytes": self.used_bytes,
            "contents": [asdict(c) for c in self.contents],
        }


class SiteLink:
    """A DP's HTTP session with the site; blocking, meant for the agent's worker thread."""

    def __init__(
        self,
        site_url: str,
        credential: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        advice: Advice = ADVICE,
        proxies: ProxySettings | None = None,
    ) -> None:
        """`ssl_context` pins the CA given at enrollment; None trusts the system's CAs."""
        self._site = SiteTransport(
            site_url,
            advice,
            credential=credential,
            timeout=timeout,
            ssl_context=ssl_context,
            proxies=proxies,
        )
        self.site_url = self._site.site_url

    def close(self) -> None:
        self._site.close()

    def enroll(self, token: str, url: str | None = None) -> Enrollment:
        body: dict[str, Any] = {"enrollment_token": token}
        if url:
            body["url"] = url
        try:
            data = self._site.json(self._request("POST", "/enroll", body))
        except SiteUnreachable:
            raise
        except QMError as exc:  # the site understood and said no
            raise EnrollmentRefused(
                f"the site refused the enrollment token: {exc.message}",
                "a token works once; ask the site administrator for a new enrollment token",
            ) from None
        return _parse_enrollment(data)

    def assignments(self) -> AssignmentList:
        return _parse_assignments(self._site.json(self._request("GET", "/assignments")))

    def manifest(self, package_hash: str) -> bytes:
        """The signed manifest envelope exactly as the site sent it (checked by the caller)."""
        return self._request("GET", f"/manifests/{package_hash}").content

    def report(self, report: Report) -> None:
        self._request("POST", "/report", report.to_dict())

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self._site.request(method, API + path, json=body)


def _parse_enrollment(data: Any) -> Enrollment:
    try:
        keys = tuple(PublicKey.from_hex(str(k["public_key"])) for k in data["signing_keys"])
        enrollment = Enrollment(
            str(data["dp"]), str(data["credential"]), str(data["site_code"]), keys
        )
    except (KeyError, TypeError, ValueError, QMError) as exc:
        raise IntegrityError(
            f"the site's enrollment answer is malformed: {exc}", "is --site the site server's URL?"
        ) from None
    if not enrollment.credential or not keys:
        raise IntegrityError("the site's enrollment answer has no credential or signing key")
    return enrollment


def _parse_assignments(data: Any) -> AssignmentList:
    try:
        assignments = tuple(_parse_assignment(a) for a in data["assignments"])
        sources = tuple(str(s) for s in data.get("sources") or ())
        return AssignmentList(
            str(data.get("dp", "")),
            int(data.get("validate_interval") or 0),
            sources,
            assignments,
            data.get("signing_keys"),
            float(data.get("content_grace_seconds") or 0),
            str(data.get("library") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityError(
            f"the site's assignment list is malformed: {exc!r}",
            "the site and DP may run different versions",
        ) from None


def _parse_assignment(item: Any) -> Assignment:
    package_hash = str(item["package_hash"])
    if not is_sha256_hex(package_hash):
        raise ValueError(f"package_hash {package_hash!r} is not a SHA-256 hex digest")
    return Assignment(
        str(item.get("package_id", "")),
        int(item.get("source_version") or 0),
        package_hash,
        str(item.get("state", "pending")),
        bool(item.get("validate", False)),
    )
