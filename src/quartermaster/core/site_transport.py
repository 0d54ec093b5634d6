"""The one way every part talks to the site's JSON API, and the one vocabulary of its failures.

The client, the DP agent and the CLI each keep only their protocol on top (which routes,
which credential); TLS trust (a pinned CA from `core.tls`, else the system's or
SSL_CERT_FILE), proxies (`core.proxies`), timeouts and the reading of errors live here, so
the same site failure is the same typed error in every part:

- the site cannot be reached, or not through the proxy: `SiteUnreachable`;
- its TLS certificate is not trusted: `UntrustedCertificate`;
- it answered with a server error (5xx), with or without the error shape: `SiteError`, with
  the site's message and hint when it sent them;
- something answered that is not a Quartermaster site (a 4xx without the error shape, a
  body that is not JSON): `NotASite`;
- the site refused the request (4xx with the error shape): the typed error of its code
  (`NotFound`, `Unauthorized`, `NotApproved`, ...), with the site's message and hint.

The first four are kinds of `SiteUnreachable`: nothing was decided about the request, so a
part tries again later rather than recording a failure. The parts differ only in the hints
they give their own users (`Advice`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from quartermaster.core.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    QMError,
    Unauthorized,
)
from quartermaster.core.proxies import Proxy, ProxySettings
from quartermaster.core.tls import certificate_problem

CONNECT_TIMEOUT = 10.0  # seconds to open a connection; the part chooses how long to wait after


class SiteUnreachable(QMError):
    """The site could not be reached or could not serve the request: try again later."""

    code = "site_unreachable"
    http_status = 503


class UntrustedCertificate(SiteUnreachable):
    """The site answered with a TLS certificate that the trusted CAs did not issue."""

    code = "untrusted_certificate"


class SiteError(SiteUnreachable):
    """The site answered with a server error (5xx); message and hint are the site's if sent."""

    code = "site_error"

    def __init__(self, message: str, hint: str = "", status: int = 500) -> None:
        super().__init__(message, hint)
        self.status = status


class NotASite(SiteUnreachable):
    """Something answered that does not speak the site's protocol (wrong URL, a proxy page)."""

    code = "not_a_site"


class SiteRefused(QMError):
    """The site refused the request with the error shape and a code no other class names."""

    code = "site_refused"


class NotApproved(QMError):
    """The site knows this client but will not serve it yet (pending approval) or at all."""

    code = "not_approved"
    http_status = 403


class RekeyRequired(QMError):
    """The administrator asked this client to replace its secret (`qm client rekey`)."""

    code = "rekey_required"
    http_status = 401


_BY_CODE: dict[str, type[QMError]] = {
    "invalid_input": InvalidInput,
    "not_found": NotFound,
    "conflict": Conflict,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "integrity": IntegrityError,
    "hash_mismatch": IntegrityError,
    "bad_signature": IntegrityError,
    "approval_pending": NotApproved,
    "client_blocked": NotApproved,
    "rekey_required": RekeyRequired,
}
_BY_STATUS: dict[int, type[QMError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
}


@dataclass(frozen=True)
class Advice:
    """What a part tells its own user to do; the error types are the same for every part."""

    who: str  # "this client", "this DP", "this command"
    unreachable: str  # hint when the site does not answer (or fails)
    untrusted: str  # hint when the site's certificate is not trusted
    credential: str  # hint when the site refuses the credential and gives no hint itself


_SYSTEM_TRUST: dict[tuple[str, str], ssl.SSLContext] = {}
_TRUST_NOTHING = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA to verify by


def system_trust(url: str) -> ssl.SSLContext:
    """The TLS context httpx makes for verify=True (certifi, or SSL_CERT_FILE/SSL_CERT_DIR),
    made once per process and per value of those variables: loading the CA bundle costs
    more CPU than a whole 304 poll, and megabytes. A plain-http site gets a context that
    trusts nothing (redirects are not followed, so it is never used)."""
    if not url.lower().startswith("https://"):
        return _TRUST_NOTHING
    key = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    context = _SYSTEM_TRUST.get(key)
    if context is None:
        context = _SYSTEM_TRUST[key] = httpx.create_ssl_context()
    return context


class SiteTransport:
    """One HTTP session with one site; blocking, for one thread at a time."""

    def __init__(
        self,
        site_url: str,
        advice: Advice,
        *,
        credential: str = "",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxySettings | None = None,
    ) -> None:
        """`ssl_context` pins a CA (core.tls); None trusts the system's CAs or SSL_CERT_FILE.
        `proxies` defaults to the environment's; `timeout` bounds each read, while a
        connection gets at most CONNECT_TIMEOUT seconds."""
        self.site_url = site_url.rstrip("/")
        self.advice = advice
        settings = ProxySettings.from_environment() if proxies is None else proxies
        self.proxy: Proxy | None = settings.proxy_for(self.site_url)
        verify = ssl_context if ssl_context is not None else system_trust(self.site_url)
        proxy = httpx.Proxy(self.proxy.url_with_credentials) if self.proxy else None
        self._http = httpx.Client(
            base_url=self.site_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            transport=httpx.HTTPTransport(verify=verify, proxy=proxy),
        )
        self.use_credential(credential)

    def use_credential(self, credential: str) -> None:
        """Send `credential` as the bearer token from now on ("" sends none)."""
        self._http.headers.pop("Authorization", None)
        if credential:
            self._http.headers["Authorization"] = f"Bearer {credential}"

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The site's answer below 400; every failure raised as a typed QMError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._not_answered(exc) from None
        if response.status_code >= 400:
            raise error_from_response(response, self.advice, self.site_url)
        return response

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of an answer `request` returned; NotASite if it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise self._not_json(response) from None

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        """As `json`, for the answers that are a JSON object (all of the site's API)."""
        body = self.json(response)
        if not isinstance(body, dict):
            raise self._not_json(response)
        return body

    def _not_answered(self, exc: httpx.HTTPError) -> SiteUnreachable:
        problem = certificate_problem(exc)
        if problem:
            return UntrustedCertificate(
                f"the site at {self.site_url} presented a TLS certificate {self.advice.who} "
                f"does not trust ({problem})",
                self.advice.untrusted,
            )
        via = f" through {self.proxy}" if self.proxy is not None else ""
        return SiteUnreachable(
            f"cannot reach the site server at {self.site_url}{via}: {_describe(exc)}",
            self.advice.unreachable
            + (f"; check {self.proxy.variable} and NO_PROXY" if self.proxy else ""),
        )

    def _not_json(self, response: httpx.Response) -> NotASite:
        return NotASite(
            f"the site at {self.site_url} answered {_request_line(response)} with something "
            "other than a JSON object",
            "check that the site URL points at a Quartermaster site server",
        )


def error_from_response(response: httpx.Response, advice: Advice, site_url: str) -> QMError:
    """The typed error for an answer of 400 or more, keeping the site's message and hint."""
    shape = _error_shape(response)
    status = response.status_code
    if shape is None:
        what = f"{site_url} answered {_request_line(response)}"
        if status >= 500:
            return SiteError(
                f"{what} with HTTP {status} {response.reason_phrase}", advice.unreachable, status
            )
        return NotASite(
            f"{what} with HTTP {status} {response.reason_phrase}, not as a Quartermaster "
            "site server would",
            "check that the site URL is the site server's (not a DP's or another server's)",
        )
    code, message, hint = shape
    if status >= 500:
        return SiteError(message, hint or advice.unreachable, status)
    error_class = _BY_CODE.get(code) or _BY_STATUS.get(status) or SiteRefused
    if error_class is NotApproved:
        hint = hint or "an administrator approves it with `qm client approve`"
    elif error_class is Unauthorized:
        hint = hint or advice.credential
    return error_class(message, hint)


def _error_shape(response: httpx.Response) -> tuple[str, str, str] | None:
    """(code, message, hint) of the protocol's error shape, or None if the body is not it."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    return str(error.get("code") or ""), error["message"], str(error.get("hint") or "")


def _request_line(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
