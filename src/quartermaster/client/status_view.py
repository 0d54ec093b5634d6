"""`qm client status`: what this client knows, read from its home without asking the site."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from quartermaster.client.cache import ContentCache
from quartermaster.client.home import ClientHome
from quartermaster.client.local_state import DeploymentState, LocalState
from quartermaster.client.policy import DeploymentPolicy, Policy
from quartermaster.client.scheduling import decide
from quartermaster.client.timestamps import format_optional, utcnow
from quartermaster.core.errors import InvalidInput


def client_status(home: ClientHome, now: datetime | None = None) -> dict[str, Any]:
    """`now` (default: this computer's clock) decides what each deployment does next."""
    now = now or utcnow()
    config = home.load_config()
    policy = _stored_policy(home)
    state = LocalState.load(home.state_path)
    cache = ContentCache(home.cache, config.cache_limit_bytes)
    entries = cache.entries()
    deployments = [
        _deployment(d, state.deployments.get(d.deployment_id, DeploymentState()), now)
        for d in (policy.deployments if policy else ())
    ]
    return {
        "client_id": config.client_id,
        "site_url": config.site_url,
        "site_code": config.site_code,
        "poll_interval": config.poll_interval,
        "policy": None
        if policy is None
        else {
            "serial": policy.serial,
            "issued": format_optional(policy.issued),
            "expires": format_optional(policy.expires),
        },
        "deployments": deployments,
        "applications": _applications(policy, state),
        "cache": {
            "used_bytes": sum(e.size for e in entries),
            "limit_bytes": config.cache_limit_bytes,
            "blobs": sum(1 for e in entries if not e.partial),
            "partial_transfers": sum(1 for e in entries if e.partial),
        },
        "spooled_status_messages": sum(1 for _ in home.spool.glob("*.json"))
        if home.spool.is_dir()
        else 0,
    }


def _stored_policy(home: ClientHome) -> Policy | None:
    """The policy as last accepted (it was verified then); for display only."""
    try:
        envelope = json.loads(home.policy_path.read_bytes())
        return Policy.from_dict(envelope["signed"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, InvalidInput):
        return None


def _deployment(d: DeploymentPolicy, local: DeploymentState, now: datetime) -> dict[str, Any]:
    decision = decide(d, local, now)
    return {
        "deployment_id": d.deployment_id,
        "package_id": d.package_id,
        "package_name": d.package_name,
        "program": d.program.name,
        "source_version": d.source_version,
        "state": d.state,
        "rerun": d.rerun,
        "available": format_optional(d.available),
        "deadline": format_optional(d.deadline),
        "expires": format_optional(d.expires),
        "result": local.result or "not run",
        "reason": local.reason,
        "exit_code": local.exit_code,
        "ran_version": local.ran_version,
        "attempts": local.attempts,
        "next_retry": local.next_retry,
        "last_run": local.last_run,
        "next": {
            "action": decision.action.value,
            "reason": decision.reason,
            # the scheduled moment itself; the agent wakes a little earlier (Decision.early)
            "at": format_optional(decision.until),
        },
    }


def _applications(policy: Policy | None, state: LocalState) -> list[dict[str, Any]]:
    """Each application this client evaluated (or policy names), with its detected state."""
    known = dict(state.applications)
    for app_id, app in (policy.applications if policy else {}).items():
        known.setdefault(app_id, {"name": app.name, "revision": app.revision})
    return [
        {
            "app_id": app_id,
            "name": entry.get("name", ""),
            "revision": entry.get("revision"),
            "state": _detected_state(entry),
            "evaluated": entry.get("evaluated"),
            "evidence": entry.get("evidence") or [],
        }
        for app_id, entry in sorted(known.items())
    ]


def _detected_state(entry: dict[str, Any]) -> str:
    if entry.get("result") == "error":
        return "detection failed"
    if "detected" not in entry:
        return "not evaluated yet"
    return "installed" if entry["detected"] else "not installed"


def render_text(status: dict[str, Any]) -> list[str]:
    policy = status["policy"]
    cache = status["cache"]
    lines = [
        f"client {status['client_id']} of site {status['site_code']} ({status['site_url']})",
        "policy: none yet"
        if policy is None
        else f"policy: serial {policy['serial']}, expires {policy['expires']}",
        f"cache: {cache['used_bytes']} of {cache['limit_bytes']} bytes, {cache['blobs']} blobs, "
        f"{cache['partial_transfers']} partial transfers",
        f"status messages waiting for delivery: {status['spooled_status_messages']}",
    ]
    for a in status["applications"]:
        lines.append(
            f"application {a['app_id']} {a['name']!r} revision {a['revision']}: {a['state']}"
            + (f" (evaluated {a['evaluated']})" if a["evaluated"] else "")
        )
        lines += [f"    {e['rule']}: {e['result']}, {e['saw']}" for e in a["evidence"]]
    if not status["deployments"]:
        lines.append("deployments: none")
    for d in status["deployments"]:
        lines.append(
            f"{d['deployment_id']}  {d['package_id']} {d['package_name']!r} "
            f"v{d['source_version']} program {d['program']!r}: {d['result']}"
            + (f" (exit code {d['exit_code']})" if d["exit_code"] is not None else "")
            + (f", {d['reason']}" if d["reason"] else "")
            + (f", next retry {d['next_retry']}" if d["next_retry"] else "")
            + f"; deadline {d['deadline'] or 'none'}, rerun {d['rerun']}"
            + ("" if d["state"] == "active" else f", {d['state']}")
        )
        step = d["next"]
        if step["action"] == "wait_window":  # the reason says what and until when
            lines.append(f"    next: {step['reason']}")
            continue
        lines.append(
            f"    next: {step['action']} ({step['reason']})"
            + (f" at {step['at']}" if step["at"] else "")
        )
    return lines
