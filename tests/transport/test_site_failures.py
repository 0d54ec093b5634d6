"""One transport, one vocabulary: client, DP and CLI read the same site failure the same way.

A real HTTP(S) server on 127.0.0.1 plays a site that fails in each way a site can; each part
calls one of its own routes through its own protocol layer and must raise the same typed
error, keeping the site's message and hint when the site sent them.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from quartermaster.cli.site_link import SiteLink as CommandSiteLink
from quartermaster.client.site_link import SiteLink as ClientSiteLink
from quartermaster.core.errors import InvalidInput, NotFound, QMError, Unauthorized
from quartermaster.core.site_transport import (
    NotApproved,
    NotASite,
    SiteError,
    SiteUnreachable,
    UntrustedCertificate,
)
from quartermaster.core.tls import ServerTLS, pinned_context
from quartermaster.dp.site_link import SiteLink as DPSiteLink
from tests.e2e.processes import free_port
from tests.e2e.tinyproxy import use_proxies
from tests.integrity.certs import self_signed

Answer = tuple[int, str, bytes]  # status, content type, body


def shaped(status: int, code: str, message: str, hint: str) -> Answer:
    body = {"error": {"code": code, "message": message, "hint": hint}}
    return status, "application/json", json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, content_type, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@contextmanager
def failing_site(answer: Answer, tls: ServerTLS | None = None) -> Iterator[str]:
    """A server that gives every request `answer`; its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.answer = answer  # type: ignore[attr-defined]
    if tls is not None:
        httpd.socket = tls.server_context().wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


Call = Callable[[str, ssl.SSLContext | None], object]


def client_call(url: str, context: ssl.SSLContext | None) -> object:
    with ClientSiteLink(url, "qmc_x", timeout=5, ssl_context=context) as link:
        return link.manifest("a" * 64)


def dp_call(url: str, context: ssl.SSLContext | None) -> object:
    link = DPSiteLink(url, "qmd_x", timeout=5, ssl_context=context)
    try:
        return link.assignments()
    finally:
        link.close()


def command_call(url: str, _context: ssl.SSLContext | None) -> object:
    """Admin commands trust the system's CAs (or SSL_CERT_FILE), never a pinned file."""
    link = CommandSiteLink(url, "qma_x")
    try:
        return link.get("/api/v1/packages")
    finally:
        link.site.close()


PARTS: dict[str, Call] = {"client": client_call, "dp": dp_call, "cli": command_call}


def failure(part: str, url: str, context: ssl.SSLContext | None = None) -> QMError:
    with pytest.raises(QMError) as caught:
        PARTS[part](url, context)
    return caught.value


@pytest.fixture(params=sorted(PARTS))
def part(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each part in turn, with no proxy and the system's CAs (the environment could say else)."""
    use_proxies(monkeypatch)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    return str(request.param)


def test_a_site_that_does_not_answer_is_unreachable(part: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    error = failure(part, url)
    assert type(error) is SiteUnreachable
    assert f"cannot reach the site server at {url}" in error.message
    assert error.hint


def test_a_proxy_that_does_not_answer_leaves_the_site_unreachable_and_is_named(
    part: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    use_proxies(monkeypatch, HTTP_PROXY=proxy)
    with failing_site(shaped(404, "not_found", "never asked", "")) as url:
        error = failure(part, url)
    assert type(error) is SiteUnreachable
    assert f"{url} through the proxy {proxy} (from HTTP_PROXY)" in error.message
    assert "HTTP_PROXY" in error.hint and "NO_PROXY" in error.hint


def test_a_site_error_with_the_error_shape_keeps_the_sites_words(part: str) -> None:
    answer = shaped(500, "internal", "the site server failed", "see the site server's log")
    with failing_site(answer) as url:
        error = failure(part, url)
    assert type(error) is SiteError and isinstance(error, SiteUnreachable)
    assert (error.message, error.hint, error.status) == (
        "the site server failed",
        "see the site server's log",
        500,
    )


def test_a_server_error_without_the_shape_is_still_a_site_error(part: str) -> None:
    with failing_site((502, "text/html", b"<h1>Bad Gateway</h1>")) as url:
        error = failure(part, url)
    assert type(error) is SiteError
    assert "HTTP 502 Bad Gateway" in error.message and url in error.message
    assert error.status == 502 and error.hint


def test_a_certificate_nobody_trusts_is_an_untrusted_certificate(part: str, tmp_path: Path) -> None:
    site_cert = self_signed(tmp_path / "certs", "site")
    other = self_signed(tmp_path / "certs", "other")
    with failing_site(
        (200, "application/json", b"{}"), ServerTLS(site_cert.cert, site_cert.key)
    ) as url:
        error = failure(part, url, pinned_context(other.cert))
    assert type(error) is UntrustedCertificate and isinstance(error, SiteUnreachable)
    assert "presented a TLS certificate" in error.message and "does not trust" in error.message
    assert error.hint


def test_a_refusal_in_the_error_shape_is_the_typed_error_of_its_code(part: str) -> None:
    answer = shaped(404, "not_found", "package QM100009 does not exist", "list packages")
    with failing_site(answer) as url:
        error = failure(part, url)
    assert type(error) is NotFound
    assert (error.message, error.hint) == ("package QM100009 does not exist", "list packages")


def test_a_shaped_refusal_with_an_unknown_code_is_typed_by_its_status(part: str) -> None:
    with failing_site(shaped(422, "too_new", "the request is too new", "upgrade")) as url:
        error = failure(part, url)
    assert type(error) is InvalidInput and error.hint == "upgrade"


def test_a_refused_credential_is_unauthorized_with_a_hint_for_this_part(part: str) -> None:
    with failing_site(shaped(401, "unauthorized", "unknown credential", "")) as url:
        error = failure(part, url)
    assert type(error) is Unauthorized and error.message == "unknown credential"
    assert error.hint  # the site gave none: the part says what its user does


def test_a_client_waiting_for_approval_is_told_so_in_every_part(part: str) -> None:
    with failing_site(shaped(403, "approval_pending", "awaiting approval", "")) as url:
        error = failure(part, url)
    assert type(error) is NotApproved and "qm client approve" in error.hint


def test_an_answer_that_is_not_the_sites_is_not_a_site(part: str) -> None:
    with failing_site((404, "text/plain", b"404: Not Found")) as url:
        error = failure(part, url)
    assert type(error) is NotASite and isinstance(error, SiteUnreachable)
    assert "HTTP 404" in error.message


def test_a_body_that_is_not_json_is_not_a_site(part: str) -> None:
    with failing_site((200, "text/html", b"<html>a login page</html>")) as url:
        error = failure(part, url)
    assert type(error) is NotASite
    assert "something other than a JSON object" in error.message
