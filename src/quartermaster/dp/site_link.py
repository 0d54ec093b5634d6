"""The only part of a distribution point that talks to the site (`/api/dp/v1`).

Everything the site says is parsed and checked here, so the agent works on typed values and
a protocol change touches one file. The data plane (blobs) does not pass through here.
"""

from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from quartermaster.core.errors import IntegrityError, QMError, Unauthorized
from quartermaster.core.hashing import is_sha256_hex
from quartermaster.core.signing import PublicKey
from quartermaster.core.tls import certificate_problem

API = "/api/dp/v1"


class SiteUnreachable(QMError):
    """The site did not answer, or answered with a server error: worth retrying later."""

    code = "site_unreachable"
    http_status = 503


class SiteRefused(QMError):
    """The site understood the request and said no (4xx with the protocol's error shape)."""

    code = "site_refused"


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
    ) -> None:
        """`ssl_context` pins the CA given at enrollment; None trusts the system's CAs."""
        self.site_url = site_url.rstrip("/")
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(
            base_url=self.site_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=ssl_context if ssl_context is not None else True,
        )

    def close(self) -> None:
        self._http.close()

    def enroll(self, token: str, url: str | None = None) -> Enrollment:
        body: dict[str, Any] = {"enrollment_token": token}
        if url:
            body["url"] = url
        try:
            data = self._json("POST", "/enroll", body)
        except (Unauthorized, SiteRefused) as exc:
            raise EnrollmentRefused(
                f"the site refused the enrollment token: {exc.message}",
                "a token works once; ask the site administrator for a new enrollment token",
            ) from None
        return _parse_enrollment(data)

    def assignments(self) -> AssignmentList:
        return _parse_assignments(self._json("GET", "/assignments"))

    def manifest(self, package_hash: str) -> bytes:
        """The signed manifest envelope exactly as the site sent it (checked by the caller)."""
        return self._request("GET", f"/manifests/{package_hash}").content

    def report(self, report: Report) -> None:
        self._request("POST", "/report", report.to_dict())

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._request(method, path, body)
        try:
            return response.json()
        except ValueError:
            raise SiteUnreachable(
                f"{method} {API}{path} did not answer JSON", "is --site the site server's URL?"
            ) from None

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = self._http.request(method, API + path, json=body)
        except httpx.HTTPError as exc:
            problem = certificate_problem(exc)
            if problem:
                raise SiteUnreachable(
                    f"the site at {self.site_url} presented a TLS certificate this DP does "
                    f"not trust ({problem})",
                    "the DP trusts only the CA pinned with --ca-file; start it with "
                    "--ca-file NEW_CA if the site's certificate moved to another CA",
                ) from None
            raise SiteUnreachable(
                f"cannot reach the site at {self.site_url}: {exc.__class__.__name__}: {exc}",
                "check the site URL and that the site server is running; the DP retries",
            ) from None
        if response.status_code >= 400:
            raise _error_from(response, f"{method} {API}{path}")
        return response


def _error_from(response: httpx.Response, what: str) -> QMError:
    message, hint, shaped = f"{what} answered HTTP {response.status_code}", "", False
    try:
        error = response.json()["error"]
        message = f"{message}: {error['message']}"
        hint, shaped = str(error.get("hint") or ""), True
    except (ValueError, KeyError, TypeError):
        pass
    if response.status_code in (401, 403):
        return Unauthorized(
            message,
            hint
            or "the DP credential was refused; re-enroll the DP "
            "with a new token (delete dp.json in its home)",
        )
    if response.status_code >= 500:
        return SiteUnreachable(message, hint or "the site failed; the DP retries")
    if not shaped:
        return SiteUnreachable(
            message, "this URL does not answer like a Quartermaster site; check the site URL"
        )
    return SiteRefused(message, hint)


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
