"""Bounds on what one connection to the site's API may cost, which uvicorn lacks.

uvicorn (with httptools) buffers a request's headers however large they grow (one 512 MiB
header left the site at 700 MiB) and sets no deadline on a connection that never finishes
its headers (slowloris). This protocol answers 431 once the request line and headers pass
`max_header_bytes`, closes a connection whose headers take longer than `header_timeout`
from its first byte (or from the connection's start), and one whose request body stops
arriving for `idle_timeout`. Between requests uvicorn's own keep-alive timeout applies.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT = 20.0  # seconds for a request line and its headers
IDLE_TIMEOUT = 60.0  # seconds without a byte of a request body
KEEP_ALIVE_TIMEOUT = 75.0  # seconds between requests (clients and DPs reuse connections)


class HeadersTooLarge(Exception):
    """Raised inside the parser's callback, so that it stops reading the request."""


class BoundedHttpProtocol(HttpToolsProtocol):
    max_header_bytes = MAX_HEADER_BYTES
    header_timeout = HEADER_TIMEOUT
    idle_timeout = IDLE_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # between requests, or inside a request line and headers
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._too_large = False

    @classmethod
    def with_limits(
        cls, max_header_bytes: int, header_timeout: float, idle_timeout: float
    ) -> type[BoundedHttpProtocol]:
        limits = {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "idle_timeout": idle_timeout,
        }
        return type("BoundedHttpProtocol", (cls,), limits)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
            if self._deadline is None:
                self._arm(self.header_timeout)
        else:
            self._arm(self.idle_timeout)  # a body is arriving: it may not stall
        super().data_received(data)
        too_large = self._in_headers and self._header_bytes > self.max_header_bytes
        if too_large and not self.transport.is_closing():
            self._send_431()  # the headers are still arriving: stop buffering them

    def on_headers_complete(self) -> None:
        self._in_headers = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:  # all of it came in one read
            self._too_large = True
            raise HeadersTooLarge  # the parser stops; send_400_response answers 431
        self._arm(self.idle_timeout)
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._send_431()
        else:
            super().send_400_response(msg)

    def on_message_complete(self) -> None:
        self._in_headers, self._header_bytes = True, 0
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._in_headers and self.cycle is not None and not self.cycle.response_complete:
            self._arm(self.header_timeout)  # still answering the previous request
            return
        if not self.transport.is_closing():
            self.transport.close()

    def _send_431(self) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "headers_too_large",
                    "message": f"request line and headers exceed {self.max_header_bytes} bytes",
                    "hint": "send fewer or shorter headers",
                }
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._disarm()
        self.transport.close()
