"""Site settings an administrator may change."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictBool, StrictInt

from quartermaster.site import settings
from quartermaster.site.api.schemas.common import Answer, Strict


class SettingsBody(Strict):
    require_approval: StrictBool | None = None  # "yes" is refused, not taken as true
    # a failed program's output kept per status message, and in all (oldest deleted first)
    program_output_message_bytes: StrictInt | None = Field(None, ge=1024, le=1024 * 1024)
    program_output_total_bytes: StrictInt | None = Field(None, ge=1024 * 1024, le=2**40)
    # download limits per client / boundary / everyone, first match (site/bandwidth.py)
    bandwidth_rules: list[dict[str, Any]] | None = Field(None, max_length=1000)
    content_grace_seconds: StrictInt | None = Field(default=None, ge=0, le=settings.MAX_GRACE)
    # seconds between garbage collection jobs the site submits (0: never)
    gc_interval_seconds: StrictInt | None = Field(default=None, ge=0, le=settings.MAX_GC_INTERVAL)
    # peer cache: the site-wide switch, per-boundary overrides, the elected fetcher's lease
    peer_cache: StrictBool | None = None
    peer_cache_boundaries: list[dict[str, Any]] | None = Field(None, max_length=1000)
    peer_lease_seconds: StrictInt | None = Field(default=None, ge=5, le=3600)


class SiteSettings(Answer):
    require_approval: bool
    program_output_message_bytes: int
    program_output_total_bytes: int
    bandwidth_rules: list[dict[str, Any]]
    content_grace_seconds: int
    gc_interval_seconds: int
    peer_cache: bool
    peer_cache_boundaries: list[dict[str, Any]]
    peer_lease_seconds: int
