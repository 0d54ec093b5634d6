"""What a stranger, a client of another boundary and a local user get from a peer's port.

A real PeerServer on 127.0.0.1 over a real cache, with tickets signed by a real site key.
The bytes a peer serves need no trust (every blob is verified by its hash), but which blobs a
computer holds says what it has installed: only a client holding the site's ticket for the
peer's own boundary may ask, and only for blobs by hash.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quartermaster.client.cache import ContentCache
from quartermaster.client.peer_server import PeerServer, PeerState, VerifiedBlobs
from quartermaster.core.component_log import ComponentLog
from quartermaster.core.peer_ticket import make_ticket
from quartermaster.core.signing import SigningKey
from tests.e2e.processes import wait_until

BOUNDARY = "10.1.2.0/24"
SITE_KEY = SigningKey.generate()
BLOB = b"installed software\n" * 1000
SHA = hashlib.sha256(BLOB).hexdigest()


def ticket(
    key: SigningKey = SITE_KEY, boundary: str = BOUNDARY, expires_in: int = 600, kind: str = ""
) -> str:
    payload = {
        "type": kind or "peer_ticket",
        "client_id": "c0ffee00-0000-4000-8000-000000000001",
        "boundary": boundary,
        "expires": int(time.time()) + expires_in,
    }
    return make_ticket(key.envelope(payload))


def blob_path(sha: str = SHA, token: str | None = None) -> str:
    return f"/peer/{token if token is not None else ticket()}/content/sha256/{sha[:2]}/{sha}"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PeerServer]:
    home = tmp_path / "client"
    cache = ContentCache(home / "cache", 10**9)
    path = cache.blob_path(SHA)
    path.parent.mkdir(parents=True)
    path.write_bytes(BLOB)
    (home / "client.json").write_text('{"secret": "not for peers"}')
    verified = VerifiedBlobs(cache)
    verified.record(SHA)
    state = PeerState(
        serve=True, boundary=BOUNDARY, reason="", trusted={SITE_KEY.keyid: SITE_KEY.public}
    )
    server = PeerServer(
        ("127.0.0.1", 0),
        verified,
        state,
        ComponentLog(home / "logs", "peercache"),
        max_connections=2,
        max_waiting=0,
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(server: PeerServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_a_client_with_the_sites_ticket_for_this_boundary_gets_the_blob(peer: PeerServer) -> None:
    # one kept-alive connection, as the fetcher asks: three connections one after the other
    # could find both slots still held by threads that had not yet ended
    conn = http.client.HTTPConnection("127.0.0.1", peer.server_address[1], timeout=10)
    answers = []
    try:
        for headers in ({}, {"Range": "bytes=100-"}, {"Range": f"bytes={len(BLOB) + 1}-"}):
            conn.request("GET", blob_path(), headers=headers)
            answer = conn.getresponse()
            answers.append((answer.status, answer.read()))
    finally:
        conn.close()
    assert answers[0] == (200, BLOB)
    assert answers[1] == (206, BLOB[100:])
    assert answers[2][0] == 416


@pytest.mark.parametrize(
    "token",
    [
        "",  # no ticket at all
        "x",  # not a ticket
        "A" * 5000,  # longer than any ticket
        ticket(key=SigningKey.generate()),  # signed by someone who is not the site
        ticket(boundary="10.9.9.0/24"),  # a client of another boundary
        ticket(expires_in=-60),  # expired
        ticket(expires_in=10 * 86400),  # claims to live for days
        ticket(kind="policy"),  # a signed object of another kind
    ],
)
def test_a_stranger_or_another_boundary_gets_nothing(peer: PeerServer, token: str) -> None:
    status, body = get(peer, blob_path(token=token))
    assert status in (403, 404)
    assert BLOB[:20] not in body
    assert peer.served_bytes == 0


def test_without_a_ticket_even_a_missing_blob_looks_the_same_as_a_held_one(
    peer: PeerServer,
) -> None:
    """A stranger cannot probe what is cached: held and not held both answer 403."""
    forged = ticket(key=SigningKey.generate())
    held = get(peer, blob_path(token=forged))
    missing = get(peer, blob_path("ab" * 32, token=forged))
    assert held == missing and held[0] == 403


@pytest.mark.parametrize(
    "path",
    [
        "/peer/{t}/content/sha256/../../client.json",
        "/peer/{t}/content/sha256/%2e%2e/%2e%2e/client.json",
        "/peer/{t}/../client.json",
        "/client.json",
        "/cache/content/sha256/{aa}/{sha}",
        "/peer/{t}/content/sha256/{aa}/{sha}.part",
        "/peer/{t}/content/sha256/zz/{sha}",
        "/peer/{t}/content/sha256/{aa}/{sha}/",
        "/peer/{t}/content/sha256/{aa}/{sha}?x=/../../client.json",
    ],
)
def test_path_traversal_and_other_paths_are_refused(peer: PeerServer, path: str) -> None:
    status, body = get(peer, path.format(t=ticket(), aa=SHA[:2], sha=SHA))
    assert status == 404
    assert b"not for peers" not in body and BLOB[:20] not in body


def test_a_cached_file_whose_bytes_do_not_match_its_name_is_never_served(
    peer: PeerServer,
) -> None:
    """Only verified content: a blob this process did not verify is hashed before serving."""
    other = hashlib.sha256(b"other").hexdigest()
    path = peer.verified.cache.blob_path(other)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not the bytes of that hash")
    assert get(peer, blob_path(other))[0] == 404


CHUNKED = b"".join(bytes([n]) * 4096 for n in range(8))  # a held file of 8 chunks


def _hold_chunked(cache: ContentCache, offset_of_third: int = 8192) -> list[tuple[str, int, int]]:
    path = cache.blob_path(hashlib.sha256(CHUNKED).hexdigest())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CHUNKED)
    chunks = [(hashlib.sha256(CHUNKED[o : o + 4096]).hexdigest(), o, 4096) for o in (0, 4096)]
    chunks.append((hashlib.sha256(CHUNKED[8192:12288]).hexdigest(), offset_of_third, 4096))
    cache.write_chunk_map(hashlib.sha256(CHUNKED).hexdigest(), chunks)
    return chunks


def test_a_chunk_is_served_as_its_slice_of_the_file_held_whole(peer: PeerServer) -> None:
    chunks = _hold_chunked(peer.verified.cache)
    sha, offset, _length = chunks[1]
    assert get(peer, blob_path(sha)) == (200, CHUNKED[offset : offset + 4096])
    assert get(peer, blob_path(sha), {"Range": "bytes=4000-"}) == (
        206,
        CHUNKED[offset + 4000 : offset + 4096],
    )
    assert get(peer, blob_path(sha), {"Range": "bytes=4097-"})[0] == 416


@pytest.mark.parametrize("offset", [4096, 2**40])  # other bytes; beyond the file's end
def test_a_chunk_map_that_points_at_other_bytes_is_never_served(
    peer: PeerServer, offset: int
) -> None:
    """A map is a hint (a crash, a local edit): the slice is hashed before it is served."""
    chunks = _hold_chunked(peer.verified.cache, offset_of_third=offset)
    status, body = get(peer, blob_path(chunks[2][0]))
    assert status == 404 and bytes([1]) * 100 not in body
    assert peer.served_bytes == 0


def test_a_peer_the_site_does_not_let_serve_answers_503(peer: PeerServer) -> None:
    peer.state.serve, peer.state.reason = False, "the computer runs on battery"
    status, body = get(peer, blob_path())
    assert status == 503 and b"battery" in body and BLOB[:20] not in body


def test_huge_requests_are_bounded_and_the_peer_keeps_serving(peer: PeerServer) -> None:
    port = peer.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\n\r\n")
        assert b" 414 " in sock.recv(100)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        headers = b"".join(b"X-%d: y\r\n" % i for i in range(500))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert b" 431 " in sock.recv(200)
    # each refused connection holds one of the two slots until its thread has ended
    wait_until(lambda: get(peer, blob_path()) == (200, BLOB), "the peer to serve again", 10)


def test_connections_over_the_limit_get_503_at_once(peer: PeerServer) -> None:
    port = peer.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.2)  # let the server take both (the assertion does not depend on it)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
            answer = third.recv(200)
        assert answer.startswith(b"HTTP/1.1 503")
    finally:
        for sock in idle:
            sock.close()
    # slots come back when the connections are closed
    wait_until(lambda: get(peer, blob_path()) == (200, BLOB), "a free connection slot", 10)
