"""The site itself, under `/api/v1`: its identity and signing keys, and its settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from quartermaster.core.errors import InvalidInput
from quartermaster.site import settings
from quartermaster.site.api.schemas.settings import SettingsBody, SiteSettings
from quartermaster.site.api.schemas.site import SiteInfo
from quartermaster.site.bandwidth import check_rules
from quartermaster.site.distribution import points
from quartermaster.site.distribution.peers import check_overrides
from quartermaster.site.identity.authorization import (
    Principal,
)
from quartermaster.site.jobs import records
from quartermaster.site.policy_serial import bump_policy_serial
from quartermaster.site.status.program_output import enforce_total
from quartermaster.site.web.access import AuditedRoute, Ctx, allow, require

router = APIRouter(prefix="/api/v1", route_class=AuditedRoute)


@router.get("/site", response_model=SiteInfo, dependencies=[allow("site.read")])
def site_info(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        embedded = points.embedded_dp_status(session)
        jobs = records.counts_by_state(session)
    return {
        "site_code": ctx.site_code,
        "name": ctx.config.name,
        "content_url": ctx.content_url,
        "library": ctx.library.storage.describe(),
        "signing_keys": [k.to_dict() for k in ctx.trusted_keys()],
        "embedded_dp": embedded,
        "jobs": {state: jobs.get(state, 0) for state in records.STATES},
    }


@router.get("/settings", response_model=SiteSettings, dependencies=[allow("settings.read")])
def get_settings(ctx: Ctx) -> dict[str, Any]:
    with ctx.db.session() as session:
        return settings.get_settings(session)


@router.post("/settings", response_model=SiteSettings)
def update_settings(
    body: SettingsBody,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(require("settings.update"))],
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("no setting to change", 'e.g. {"require_approval": true}')
    if "bandwidth_rules" in changes:
        changes["bandwidth_rules"] = check_rules(changes["bandwidth_rules"])
    if "peer_cache_boundaries" in changes:
        changes["peer_cache_boundaries"] = check_overrides(changes["peer_cache_boundaries"])
    with ctx.db.session() as session:
        updated = settings.update_settings(session, changes, principal.actor)
        if "bandwidth_rules" in changes:  # every client's policy may change
            bump_policy_serial(session)
        if "program_output_total_bytes" in changes:  # a lower cap applies at once
            enforce_total(session, updated["program_output_total_bytes"])
        return updated
