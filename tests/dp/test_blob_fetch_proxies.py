"""The data path behind a real proxy (tinyproxy on 127.0.0.1), as the environment names it.

An https source is reached through a CONNECT tunnel with TLS to the source itself, checked
against the pinned CA; an http source with an absolute-form request. Blobs are large enough
for the receive paths that use two threads (the DP's buffered one, the client's mapped one).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from quartermaster.core.blob_transfer import PIPELINE_MIN, BlobFetcher, TransferError
from quartermaster.core.proxies import ProxySettings
from quartermaster.core.store_layout import blob_url
from quartermaster.core.tls import ServerTLS, pinned_context
from quartermaster.dp.content_server import StoreMount
from tests.dp.dp_fixtures import ContentServer, put_raw_blob, random_bytes
from tests.e2e.processes import free_port
from tests.e2e.tinyproxy import running_tinyproxy, use_proxies
from tests.integrity.certs import Certificate, self_signed

SIZE = PIPELINE_MIN + 123_457


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path / "certs", "dp")


@pytest.fixture
def https_dp(tmp_path: Path, certificate: Certificate) -> Iterator[ContentServer]:
    tls = ServerTLS(certificate.cert, certificate.key).server_context()
    server = ContentServer([StoreMount("", tmp_path / "store")], ssl_context=tls).start()
    yield server
    server.stop()


@pytest.fixture
def http_dp(tmp_path: Path) -> Iterator[ContentServer]:
    server = ContentServer([StoreMount("", tmp_path / "store")]).start()
    yield server
    server.stop()


@pytest.mark.parametrize("durable", [True, False], ids=["dp-buffered", "client-mapped"])
def test_an_https_blob_comes_through_a_connect_tunnel_checked_against_the_pinned_ca(
    tmp_path: Path, https_dp: ContentServer, certificate: Certificate, durable: bool
) -> None:
    data = random_bytes(SIZE)
    sha = put_raw_blob(tmp_path / "store", data)
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        fetcher = BlobFetcher(
            ssl_context=pinned_context(certificate.cert),
            proxies=ProxySettings.from_environment({"HTTPS_PROXY": proxy.url}),
        )
        try:
            result = fetcher.fetch(
                blob_url(https_dp.url, sha), tmp_path / "got", sha, SIZE, durable=durable
            )
        finally:
            fetcher.close()
        assert proxy.connects_to(https_dp.port) == 1
    assert result.bytes_transferred == SIZE
    assert (tmp_path / "got").read_bytes() == data
    assert [h.status for h in https_dp.blob_hits(sha)] == [200]


def test_an_http_blob_is_asked_of_the_proxy_in_absolute_form(
    tmp_path: Path, http_dp: ContentServer
) -> None:
    data = random_bytes(SIZE)
    sha = put_raw_blob(tmp_path / "store", data)
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        fetcher = BlobFetcher(proxies=ProxySettings.from_environment({"http_proxy": proxy.url}))
        try:
            fetcher.fetch(blob_url(http_dp.url, sha), tmp_path / "got", sha, SIZE)
        finally:
            fetcher.close()
        assert proxy.gets_from(http_dp.port, f"/content/sha256/{sha[:2]}/{sha}") == 1
    assert (tmp_path / "got").read_bytes() == data


def test_the_fetcher_reads_its_proxies_from_the_environment(
    tmp_path: Path, http_dp: ContentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = put_raw_blob(tmp_path / "store", b"environment\n")
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url)
        fetcher = BlobFetcher()
        try:
            fetcher.fetch(blob_url(http_dp.url, sha), tmp_path / "got", sha, 12)
        finally:
            fetcher.close()
        assert proxy.gets_from(http_dp.port) == 1


def test_no_proxy_sends_the_listed_range_direct(
    tmp_path: Path, http_dp: ContentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = put_raw_blob(tmp_path / "store", b"direct\n")
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        use_proxies(monkeypatch, HTTP_PROXY=proxy.url, NO_PROXY="example.com,127.0.0.0/8")
        fetcher = BlobFetcher()
        try:
            fetcher.fetch(blob_url(http_dp.url, sha), tmp_path / "got", sha, 7)
        finally:
            fetcher.close()
        assert proxy.requests() == []
    assert [h.status for h in http_dp.blob_hits(sha)] == [200]


def test_through_the_tunnel_a_certificate_from_another_ca_is_still_refused(
    tmp_path: Path, https_dp: ContentServer
) -> None:
    sha = put_raw_blob(tmp_path / "store", b"never trusted\n")
    impostor_ca = self_signed(tmp_path / "certs", "someone-else")
    with running_tinyproxy(tmp_path / "proxy") as proxy:
        fetcher = BlobFetcher(
            ssl_context=pinned_context(impostor_ca.cert),
            proxies=ProxySettings.from_environment({"HTTPS_PROXY": proxy.url}),
        )
        with pytest.raises(TransferError) as caught:
            fetcher.fetch(blob_url(https_dp.url, sha), tmp_path / "got", sha, 14)
        fetcher.close()
        assert proxy.connects_to(https_dp.port) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert proxy.url in caught.value.message
    assert not (tmp_path / "got").exists()


def test_a_proxy_that_refuses_the_tunnel_is_named_in_the_error(
    tmp_path: Path, https_dp: ContentServer, certificate: Certificate
) -> None:
    sha = put_raw_blob(tmp_path / "store", b"behind a wall\n")
    with running_tinyproxy(tmp_path / "proxy", deny=True) as proxy:
        fetcher = BlobFetcher(
            ssl_context=pinned_context(certificate.cert),
            proxies=ProxySettings.from_environment({"HTTPS_PROXY": proxy.url}),
        )
        with pytest.raises(TransferError) as caught:
            fetcher.fetch(blob_url(https_dp.url, sha), tmp_path / "got", sha, 14)
        fetcher.close()
    message = caught.value.message
    assert f"through the proxy {proxy.url} (from HTTPS_PROXY)" in message
    assert "Tunnel connection failed: 403" in message
    assert "HTTPS_PROXY" in caught.value.hint and "NO_PROXY" in caught.value.hint
    assert https_dp.blob_hits(sha) == []


def test_a_proxy_that_does_not_listen_is_named_in_the_error(
    tmp_path: Path, http_dp: ContentServer
) -> None:
    sha = put_raw_blob(tmp_path / "store", b"nobody home\n")
    dead_proxy = f"127.0.0.1:{free_port()}"
    environment = {"HTTP_PROXY": f"http://agent:s3cret@{dead_proxy}"}
    fetcher = BlobFetcher(proxies=ProxySettings.from_environment(environment))
    with pytest.raises(TransferError) as caught:
        fetcher.fetch(blob_url(http_dp.url, sha), tmp_path / "got", sha, 12)
    fetcher.close()
    assert f"through the proxy http://{dead_proxy} (from HTTP_PROXY)" in caught.value.message
    assert "ConnectionRefusedError" in caught.value.message
    assert "s3cret" not in str(caught.value)
    assert http_dp.blob_hits(sha) == []


def test_a_kept_connection_the_other_end_closed_is_replaced_once(tmp_path: Path) -> None:
    """A proxy (or server) that keeps no connection but does not say so: the fetcher's next
    request on it finds it closed, and goes out again on a new one."""
    blobs = {hashlib.sha256(data).hexdigest(): data for data in (b"first\n", b"second\n")}
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[str] = []

    def answer_once_then_close() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536).decode()
                path = head.split(" ", 2)[1]
                connections.append(path)
                data = blobs[path.rsplit("/", 1)[1]]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)

    threading.Thread(target=answer_once_then_close, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    fetcher = BlobFetcher(proxies=ProxySettings.none())
    try:
        for sha, data in blobs.items():
            fetcher.fetch(blob_url(url, sha), tmp_path / sha, sha, len(data))
    finally:
        fetcher.close()
        listener.close()
    assert [(tmp_path / sha).read_bytes() for sha in blobs] == list(blobs.values())
    assert len(connections) == 2
