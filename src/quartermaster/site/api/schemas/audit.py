"""The audit log as the API answers it."""

from __future__ import annotations

from typing import Any

from quartermaster.site.api.schemas.common import Answer


class AuditEntryView(Answer):
    id: int
    time: str
    account: str
    action: str
    object: str
    outcome: str
    status: int | None
    source: str
    details: Any


class AuditLog(Answer):
    entries: list[AuditEntryView]
