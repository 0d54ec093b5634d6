"""The routes every client calls in every poll and wave, as one declared table.

Routing and dependency solving cost FastAPI as much CPU as these routes' database work, so
`ClientFastPath` (ASGI middleware, inside BodyLimit) answers them straight from the table.
The same table builds the FastAPI routes that the OpenAPI document and the route table show,
so the two cannot drift apart. And the table authorizes: an answer authenticates inside its
own transaction (one statement for an approved client) with an `Authenticate` bound to its
row's action, and an answer that returns without having called it fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from quartermaster.core.client_protocol import CLIENT_API, POLL_AFTER_HEADER
from quartermaster.core.errors import QMError
from quartermaster.site.api.openapi import request_body_schema
from quartermaster.site.context import SiteContext
from quartermaster.site.targeting import client_access
from quartermaster.site.web.access import ClientAction, Ctx, client_secret, declare_requirement
from quartermaster.site.web.errors import (
    invalid_data_handler,
    qm_error_handler,
    validation_handler,
)


def with_poll_hint(request: Request, response: Response) -> Response:
    """The `QM-Poll-After` header for a client flagged by `qm client notify`."""
    if getattr(getattr(request.state, "principal", None), "poll_requested", False):
        response.headers[POLL_AFTER_HEADER] = str(client_access.NOTIFY_POLL_SECONDS)
    return response


class Authenticate:
    """`client_access.authenticate` for one request, with the action of its table row."""

    def __init__(self, request: Request, action: str) -> None:
        self._request = request
        self._action = action
        self._secret = client_secret(request)  # 401 before any body is read or thread used
        self.called = False

    def __call__(
        self, session: Session, policy_request: datetime | None = None
    ) -> client_access.ClientCall:
        call = client_access.authenticate(
            session, self._secret, self._action, policy_request=policy_request
        )
        self._request.state.principal = call.principal  # for the poll hint and errors
        self.called = True
        return call


# (the request, the site, the path argument or "", the row's Authenticate) -> the answer
Answer = Callable[[Request, SiteContext, str, Authenticate], Coroutine[Any, Any, Response]]


@dataclass(frozen=True)
class FastRoute:
    """One row: `METHOD CLIENT_API/segment[/{package_hash}]`, its action and its answer."""

    name: str  # the operation's name in the OpenAPI document
    method: str
    segment: str
    action: str
    answer: Answer
    takes_hash: bool = False
    body: type[BaseModel] | None = None  # a body the answer reads itself (parse_body)
    requirement: ClientAction = field(init=False)

    def __post_init__(self) -> None:
        # ClientAction refuses, at import, an action that is not a client action.
        object.__setattr__(self, "requirement", ClientAction(self.action))

    @property
    def path(self) -> str:
        return f"/{self.segment}/{{package_hash}}" if self.takes_hash else f"/{self.segment}"

    def matches(self, slash: str, argument: str) -> bool:
        """Whether the rest of the path after the segment is what this row takes."""
        if self.takes_hash:
            return bool(argument) and "/" not in argument
        return not slash

    async def serve(self, request: Request, ctx: SiteContext, argument: str) -> Response:
        authenticate = Authenticate(request, self.action)
        response = await self.answer(request, ctx, argument, authenticate)
        if not authenticate.called:  # an answer must never skip its row's authorization
            raise RuntimeError(f"{self.method} {self.path} answered without authenticating")
        return with_poll_hint(request, response)

    def endpoint(self) -> Callable[..., Awaitable[Response]]:
        """The FastAPI endpoint of this row (OpenAPI, the route table; requests that reach
        FastAPI's routing instead of ClientFastPath)."""
        if self.takes_hash:

            async def with_hash(package_hash: str, request: Request, ctx: Ctx) -> Response:
                return await self.serve(request, ctx, package_hash)

            endpoint: Callable[..., Awaitable[Response]] = with_hash
        else:

            async def without_argument(request: Request, ctx: Ctx) -> Response:
                return await self.serve(request, ctx, "")

            endpoint = without_argument
        declare_requirement(endpoint, self.requirement)
        return endpoint


def add_routes(router: APIRouter, table: tuple[FastRoute, ...]) -> None:
    """The FastAPI routes of the table, for the OpenAPI document and the route table."""
    for row in table:
        router.add_api_route(
            row.path,
            row.endpoint(),
            methods=[row.method],
            name=row.name,
            openapi_extra=request_body_schema(row.body) if row.body else None,
        )


PREFIX = CLIENT_API + "/"


class ClientFastPath:
    """ASGI middleware answering the rows of `table` without FastAPI's routing: same answers,
    checks, errors and poll hint as the routes built from the same table."""

    def __init__(self, app: Callable[..., Awaitable[None]], table: tuple[FastRoute, ...]) -> None:
        self.app = app
        self.rows = {(row.method, row.segment): row for row in table}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            segment, slash, argument = scope["path"][len(PREFIX) :].partition("/")
            row = self.rows.get((scope["method"], segment))
            if row is not None and row.matches(slash, argument):
                scope.setdefault("state", {})["route"] = CLIENT_API + row.path  # log, metrics
                await _fast(row, argument, scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _fast(
    row: FastRoute, argument: str, scope: dict[str, Any], receive: Any, send: Any
) -> None:
    request = Request(scope, receive)
    try:
        response = await row.serve(request, scope["app"].state.ctx, argument)
    except QMError as exc:
        response = await qm_error_handler(request, exc)
    except RequestValidationError as exc:
        response = await validation_handler(request, exc)
    except (DataError, OverflowError) as exc:
        response = await invalid_data_handler(request, exc)
    await response(scope, receive, send)
