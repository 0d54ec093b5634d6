"""The routes of every poll and wave are one table: the FastAPI routes (OpenAPI, the route
matrix) and ClientFastPath are built from it, and the table, not each answer, decides
which action is authorized."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import Request, Response
from fastapi.routing import APIRoute

from quartermaster.site.api.client_fast_path import Authenticate, ClientFastPath, FastRoute
from quartermaster.site.api.routes.client_api import CLIENT_TABLE
from quartermaster.site.context import SiteContext
from quartermaster.site.web.access import requirement_of
from tests.security.conftest import SiteApi, bearer
from tests.security.test_route_matrix import route_cases


def test_each_row_is_one_route_with_its_action_and_one_fast_path_entry(site_api: SiteApi) -> None:
    routes = {(case.method, case.path): case.route for case in route_cases(site_api.http.app)}  # type: ignore[arg-type]
    fast = ClientFastPath(site_api.http.app, CLIENT_TABLE)  # type: ignore[arg-type]
    assert len(CLIENT_TABLE) == 4
    for row in CLIENT_TABLE:
        route = routes[(row.method, "/api/client/v1" + row.path)]
        assert isinstance(route, APIRoute)
        requirement = requirement_of(route)
        assert requirement is not None and requirement.action == row.action
        assert fast.rows[(row.method, row.segment)] is row


def test_a_row_whose_answer_does_not_authenticate_fails_closed(site_api: SiteApi) -> None:
    async def careless(request: Request, ctx: SiteContext, _: str, __: Authenticate) -> Response:
        return Response(b"{}", media_type="application/json")

    row = FastRoute("careless", "GET", "careless", "client_api.policy", careless)
    _, secret, _ = site_api.register_client()
    headers = [(k.lower().encode(), v.encode()) for k, v in bearer(secret).items()]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}

    with pytest.raises(RuntimeError, match="answered without authenticating"):
        asyncio.run(row.serve(Request(scope), site_api.ctx, ""))


def test_the_row_decides_the_action_its_answer_is_authorized_for(site_api: SiteApi) -> None:
    """A blocked client may not poll: an answer authenticating for its row is refused."""
    client_id, secret, _ = site_api.register_client()
    site_api.ok("POST", f"/api/v1/clients/{client_id}/block")

    for row in CLIENT_TABLE:
        url = "/api/client/v1" + row.path.replace("{package_hash}", "0" * 64)
        response = site_api.http.request(row.method, url, headers=bearer(secret), json={})
        assert response.status_code == 403, (row.name, response.text)
        assert response.json()["error"]["code"] == "client_blocked"


def test_a_row_cannot_declare_an_action_of_another_credential() -> None:
    async def answer(request: Request, ctx: SiteContext, _: str, __: Authenticate) -> Response:
        return Response()

    with pytest.raises(ValueError, match="not a client action"):
        FastRoute("packages", "GET", "packages", "package.read", answer)
