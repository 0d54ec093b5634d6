"""The control plane's access log and request IDs: one line per request, one ID per request.

Outermost middleware of the site's API: it gives each request an ID (the caller's own
`X-Request-ID` when sane, else a new one), binds it for every log line written while the
request is handled, returns it in the `X-Request-ID` header and in every error body, and logs
method, path, route, status, bytes, duration and principal when the answer is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quartermaster.core.logging_setup import (
    REQUEST_ID_HEADER,
    accept_request_id,
    bind_request_id,
    unbind_request_id,
)

log = logging.getLogger("quartermaster.site.access")
_HEADER = REQUEST_ID_HEADER.lower().encode()

# Called once per request with (method, route template, status, seconds); the metrics use it.
Observer = Callable[[str, str, int, float], None]


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's path template (`/api/v1/packages/{package_id}`), never the raw
    path: a label of bounded cardinality for logs and metrics."""
    state = scope.get("state") or {}
    if state.get("route"):
        return str(state["route"])
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "(unmatched)"


def principal_name(scope: dict[str, Any]) -> str:
    principal: Any = (scope.get("state") or {}).get("principal")
    name = getattr(principal, "name", "")
    if not name:
        return "-"
    kind = principal.kind
    return f"{getattr(kind, 'value', kind)}:{name}"


class RequestLog:
    def __init__(
        self, app: Callable[..., Awaitable[None]], observers: list[Observer] | None = None
    ) -> None:
        self.app = app
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v for k, v in scope.get("headers", ()) if k == _HEADER), b"")
        request_id = accept_request_id(offered.decode("latin-1"))
        scope.setdefault("state", {})["request_id"] = request_id
        token = bind_request_id(request_id)
        started = time.perf_counter()
        answer = {"status": 500, "bytes": 0}

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            status = answer["status"]
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "bytes": answer["bytes"],
                    "duration_ms": round(seconds * 1000, 2),
                    "principal": principal_name(scope),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )
            for observe in self.observers:
                observe(scope["method"], route, status, seconds)
            unbind_request_id(token)
