"""Every route of the site's app × {no token, viewer, operator, admin}: 401, 403, or let in.

The routes come from the app's own route table, so a new route is checked the day it is
added. What each route *should* allow is worked out here from its method and path, not read
from site/authorization.py, and the table there must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from quartermaster.site.identity.authorization import RULES, Credential
from quartermaster.site.web.access import CheckedRoute, Requirement, requirement_of
from tests.security.conftest import ROLES, SiteApi, bearer

RANK = {role: rank for rank, role in enumerate(ROLES)}
PARAMS = {
    "package_id": "QM1FFFFF",
    "deployment_id": "QM1FFFFF",
    "name": "nothing-here",
    "client_id": "00000000-0000-4000-8000-000000000000",
    "token_id": "999999",
    "package_hash": "0" * 64,
    "app_id": "QM1FFFFF",
    "job_id": "999999",
    "source_version": "1",
}
PUBLIC = {
    "/healthz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/api/client/v1/register",
    "/api/dp/v1/enroll",
    "/readyz",
}
# Open without a token to a direct loopback peer, which this test's client is (127.0.0.1);
# an account token otherwise. tests/operations/test_metrics.py asks from elsewhere.
LOOPBACK_OPEN = {"/metrics"}


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    route: object

    @property
    def url(self) -> str:
        url = self.path
        for name, value in PARAMS.items():
            url = url.replace("{" + name + "}", value)
        assert "{" not in url, f"give a test value for a path parameter of {self.path}"
        return url

    def send(self, site: SiteApi, secret: str | None) -> tuple[int, dict[str, object]]:
        headers = bearer(secret) if secret else {}
        body: dict[str, object] | None = None if self.method == "GET" else {}
        response = site.http.request(self.method, self.url, headers=headers, json=body)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else {}


def route_cases(app: FastAPI) -> list[RouteCase]:
    cases = []
    for context in iter_route_contexts(app.routes):
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                cases.append(RouteCase(method, str(context.path), context.original_route))
    return cases


def credential_of(case: RouteCase) -> Credential:
    if case.path in PUBLIC:
        return Credential.NONE
    if case.path.startswith("/api/client/v1/"):
        return Credential.CLIENT
    if case.path.startswith("/api/dp/v1/"):
        return Credential.DP
    if case.path in LOOPBACK_OPEN:
        return Credential.ACCOUNT
    assert case.path.startswith("/api/v1/"), f"{case.path}: which API is this?"
    return Credential.ACCOUNT


def minimum_role(method: str, path: str) -> str:
    """Identity (accounts, audit, settings, client and DP credentials) is for admins; any
    other change for operators; reading for everyone."""
    admin_only = (
        path.startswith(("/api/v1/accounts", "/api/v1/audit"))
        or (
            method != "GET"
            and path.startswith(("/api/v1/settings", "/api/v1/clients"))
            and path != "/api/v1/clients/notify"
        )  # asking to poll is operating
        or (method, path) == ("POST", "/api/v1/dps")
        or path.endswith(("/retire", "/reenroll"))
    )
    if admin_only:
        return "admin"
    return "viewer" if method == "GET" else "operator"


def _let_in(status: int) -> bool:
    """Past authentication and authorization: success, or a not-found / invalid-input answer."""
    return status not in (401, 403) and status < 500


def test_every_route_answers_each_role_as_its_action_says(site_api: SiteApi) -> None:
    cases = route_cases(site_api.http.app)  # type: ignore[arg-type]
    client_id, client_secret, _ = site_api.register_client()
    dp_credential = site_api.enroll_dp("matrix-dp")
    problems: list[str] = []
    checked: set[tuple[str, str]] = set()
    for case in cases:
        credential = credential_of(case)
        problems += _declaration_problems(case, credential)
        callers: dict[str, str | None] = {"no token": None, **site_api.tokens}
        for caller, secret in callers.items():
            status, body = case.send(site_api, secret)
            expected = _expected(case, credential, caller)
            if not _matches(expected, status, body):
                problems.append(
                    f"{case.method} {case.path} as {caller}: {status} (expected {expected}) {body}"
                )
        if credential is Credential.CLIENT:
            status, body = case.send(site_api, client_secret)
            if not _let_in(status):
                problems.append(f"{case.method} {case.path} as approved client: {status} {body}")
        if credential is Credential.DP:
            status, body = case.send(site_api, dp_credential)
            if not _let_in(status):
                problems.append(f"{case.method} {case.path} as enrolled DP: {status} {body}")
        checked.add((case.method, case.path))
    assert not problems, "\n".join(problems)
    assert client_id
    for known in [
        ("POST", "/api/v1/packages"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/accounts"),
        ("GET", "/api/client/v1/policy"),
        ("POST", "/api/dp/v1/report"),
        ("POST", "/api/v1/dps/{name}/retire"),
        ("POST", "/api/client/v1/rekey"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/approvals"),
        ("GET", "/api/v1/audit/trust-log"),
        ("GET", "/api/client/v1/roots"),
    ]:
        assert known in checked, f"the route table lost {known}"


def _expected(case: RouteCase, credential: Credential, caller: str) -> str:
    if credential is Credential.NONE or (case.path in LOOPBACK_OPEN and caller == "no token"):
        return "in"
    if caller == "no token" or credential is not Credential.ACCOUNT:
        return "401"
    return "in" if RANK[caller] >= RANK[minimum_role(case.method, case.path)] else "403"


def _matches(expected: str, status: int, body: dict[str, object]) -> bool:
    if expected == "in":
        return _let_in(status)
    error = body.get("error")
    code = {"401": "unauthorized", "403": "forbidden"}[expected]
    return str(status) == expected and isinstance(error, dict) and error.get("code") == code


def _declaration_problems(case: RouteCase, credential: Credential) -> list[str]:
    """The action a route declares must be the one this test expects of it."""
    route = case.route
    if not isinstance(route, APIRoute):
        return [] if case.path in PUBLIC else [f"{case.path} is not an API route"]
    requirement = requirement_of(route)
    if requirement is None:
        return [f"{case.method} {case.path} declares no action"]
    rule = requirement.rule
    if rule.credential is not credential:
        return [
            f"{case.method} {case.path}: {requirement.action} takes a "
            f"{rule.credential.value} credential, expected {credential.value}"
        ]
    if credential is not Credential.ACCOUNT:
        return []
    minimum = minimum_role(case.method, case.path)
    wanted = {r for r in ROLES if RANK[r] >= RANK[minimum]}
    if set(rule.roles) != wanted:
        return [
            f"{case.method} {case.path}: {requirement.action} allows {sorted(rule.roles)}, "
            f"expected {sorted(wanted)}"
        ]
    return []


def test_a_route_without_an_action_cannot_be_added() -> None:
    router = APIRouter(route_class=CheckedRoute)

    def forgotten() -> dict[str, str]:
        return {}

    try:
        router.add_api_route("/api/v1/forgotten", forgotten, methods=["POST"])
    except TypeError as exc:
        assert "declares no action" in str(exc)
    else:
        raise AssertionError("a route without require(action) was accepted")


def test_every_action_in_the_table_is_used_by_a_route_or_by_a_route_body(site_api: SiteApi) -> None:
    """An action no route names is a permission nobody checks (or a typo)."""
    declared = set()
    for case in route_cases(site_api.http.app):  # type: ignore[arg-type]
        if isinstance(case.route, APIRoute):
            requirement = requirement_of(case.route)
            assert isinstance(requirement, Requirement)
            declared.add(requirement.action)
    not_on_routes = {
        "token.manage_others",  # checked inside the token routes
        "legacy.admin_only",
    }  # common.Admin, the fail-closed default
    assert set(RULES) - declared == not_on_routes
