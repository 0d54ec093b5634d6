"""Bandwidth rules at the site: who may set them, what is refused, what a client's policy
then carries (the first rule that matches it, by client, by boundary, or for everyone)."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.security.conftest import SiteApi, bearer

BUSINESS_HOURS = [{"days": "mon-fri", "from": "08:00", "to": "18:00", "rate": 2_000_000}]


def policy_of(site: SiteApi, secret: str) -> dict[str, Any]:
    answer = site.http.get("/api/client/v1/policy", headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    envelope = answer.json()
    payload = envelope["signed"]
    if isinstance(payload, str):
        payload = json.loads(base64.b64decode(payload))
    return dict(payload)


def test_the_first_matching_rule_is_carried_in_each_clients_policy(site_api: SiteApi) -> None:
    lab_id, lab_secret, _ = site_api.register_client("lab-01")  # address 10.1.2.3
    other_id, other_secret, _ = site_api.register_client("lab-02")
    assert "bandwidth" not in policy_of(site_api, lab_secret)  # no rules: unlimited
    rules = [
        {"client": other_id, "rate": None, "schedule": [{"days": "sat", "from": "00:00",
                                                           "to": "06:00", "rate": 0}]},
        {"boundary": "10.1.0.0/16", "rate": 500_000, "schedule": BUSINESS_HOURS},
        {"rate": 1_000_000},
    ]  # fmt: skip
    site_api.ok("POST", "/api/v1/settings", json={"bandwidth_rules": rules})
    assert policy_of(site_api, lab_secret)["bandwidth"] == {
        "rate": 500_000,
        "schedule": BUSINESS_HOURS,
    }
    assert policy_of(site_api, other_secret)["bandwidth"]["schedule"][0]["rate"] == 0
    shown = site_api.ok("GET", "/api/v1/settings", "viewer")["bandwidth_rules"]
    assert shown == rules


def test_bad_rules_are_refused_and_only_admins_may_set_rules(site_api: SiteApi) -> None:
    for bad, says in [
        ([{"boundary": "10.1.0.0/33"}], "not a CIDR range"),
        ([{"client": "x", "boundary": "10.0.0.0/8"}], "names a client and a boundary"),
        ([{"rate": -5}], "a rate is bytes per second"),
        ([{"speed": 5}], "unknown keys: speed"),
        ([{"schedule": [{"days": "mon", "from": "25:00", "to": "26:00"}]}], "not a time"),
    ]:
        answer = site_api.call("POST", "/api/v1/settings", json={"bandwidth_rules": bad})
        assert answer.status_code in (400, 422), (bad, answer.text)
        assert says in answer.text, (bad, answer.text)
    assert site_api.ok("GET", "/api/v1/settings")["bandwidth_rules"] == []
    for role in ("viewer", "operator"):
        refused = site_api.call(
            "POST", "/api/v1/settings", role, json={"bandwidth_rules": [{"rate": 1}]}
        )
        assert refused.status_code == 403
    assert site_api.call("POST", "/api/v1/settings", None, json={}).status_code == 401
