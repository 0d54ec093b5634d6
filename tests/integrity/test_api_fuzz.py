"""schemathesis over the site's own OpenAPI document, against a real `qm site serve`.

Every operation gets a bounded, deterministic set of generated requests (valid and not),
sent with a credential of the kind the route wants (admin token, client secret, DP
credential). No answer may be a server error or break the documented schema, errors
included (one JSON error shape, docs/protocol.md).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_postgres_database
from tests.e2e.processes import SiteServer, run_qm, start_site
from tests.e2e.scenario import create_package, make_source

pytestmark = pytest.mark.e2e
# Per operation: 12 keeps the whole run well under three minutes; QM_FUZZ_EXAMPLES digs deeper.
MAX_EXAMPLES = int(os.environ.get("QM_FUZZ_EXAMPLES", "12"))


# One site per engine serves the module's tests: those of one engine stay on one xdist worker.
FUZZ_ENGINES = [
    pytest.param("sqlite", marks=pytest.mark.xdist_group("fuzz-sqlite")),
    pytest.param(
        "postgresql", marks=[pytest.mark.postgresql, pytest.mark.xdist_group("fuzz-postgresql")]
    ),
]


@pytest.fixture(scope="module", params=FUZZ_ENGINES)
def fuzz_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A site with one package, one registered client and one enrolled DP to aim at, on
    each database engine (PostgreSQL refuses some text SQLite takes)."""
    with contextlib.ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            database = stack.enter_context(fresh_postgres_database(migrated=True))
        yield from _prepared_site(tmp_path_factory.mktemp("fuzz"), database)


# Properties at and beyond the limits (site/json_limits.py): the first ones are stored,
# the others refused; no list the fuzzer then reads may fail.
HOSTILE_PROPERTIES: list[dict[str, Any]] = [
    {"a": {"b": {}}, "rtl": "\u202eexe.txt", "max": 2**63 - 1, "f": 1e308, "l": [None, True]},
    {"k" * 1024: "v" * 1024},
    {"deep": {"a": {"b": {"c": 1}}}},
    {"nul": "a\u0000b"},
    {"big": 2**64},
]


def _prepared_site(base: Path, database: str | None) -> Iterator[dict[str, Any]]:
    site = start_site(base, database=database)
    try:
        create_package(site, make_source(base / "src", base / "out.txt"), name="Fuzz")
        client = base / "client"
        run_qm("client", "register", "--home", str(client), "--site", site.url)
        for properties in HOSTILE_PROPERTIES:  # stored for every list the fuzzer reads
            httpx.post(
                f"{site.url}/api/client/v1/register",
                json={"hostname": "hostile", "properties": properties},
                timeout=30,
            )
        token = site.qm("dp", "add", "--name", "fuzz-dp", "--url", "http://127.0.0.1:9").stdout
        enrolled = httpx.post(
            f"{site.url}/api/dp/v1/enroll", timeout=30, json={"enrollment_token": token.strip()}
        ).json()
        yield {
            "site": site,
            "client_secret": (client / "secret").read_text().strip(),
            "dp_credential": enrolled["credential"],
        }
    finally:
        site.stop()


def _credential(path: str, fuzz_site: dict[str, Any]) -> str:
    if path.startswith("/api/client/v1/"):
        return str(fuzz_site["client_secret"])
    if path.startswith("/api/dp/v1/"):
        return str(fuzz_site["dp_credential"])
    return str(fuzz_site["site"].token)


def _fuzz(operation: Any, fuzz_site: dict[str, Any], statuses: Counter[int]) -> None:
    """Valid and invalid requests for one operation; the first failure raises."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error, response_schema_conformance

    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    headers = {"Authorization": f"Bearer {_credential(operation.path, fuzz_site)}"}

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        verbosity=Verbosity.quiet,
    )
    def send(case: Any) -> None:
        response = case.call_and_validate(
            headers=headers, timeout=60, checks=[not_a_server_error, response_schema_conformance]
        )
        statuses[response.status_code] += 1

    send()


def test_no_server_error_and_no_answer_outside_the_schema(fuzz_site: dict[str, Any]) -> None:
    import schemathesis  # here, not at the top: collecting every test need not import it

    site: SiteServer = fuzz_site["site"]
    schema: Any = schemathesis.openapi.from_url(f"{site.url}/openapi.json")
    # Revoking the fuzzer's own token (its ID is small) would leave the rest untested.
    schema = schema.exclude(path_regex=r"^/api/v1/tokens/\{token_id\}/revoke$")
    failures: dict[str, str] = {}
    tested, accepted = 0, 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1
        statuses: Counter[int] = Counter()
        try:
            _fuzz(operation, fuzz_site, statuses)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported all at once
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:3000]
        accepted += any(200 <= status < 300 for status in statuses)
    assert tested >= 40, f"only {tested} operations in the OpenAPI document"
    assert accepted >= tested // 3, f"only {accepted} of {tested} operations ever answered 2xx"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_the_fuzzed_site_still_serves(fuzz_site: dict[str, Any], tmp_path: Path) -> None:
    site: SiteServer = fuzz_site["site"]
    site.daemon.check_alive()
    assert httpx.get(f"{site.url}/healthz", timeout=10).status_code == 200
