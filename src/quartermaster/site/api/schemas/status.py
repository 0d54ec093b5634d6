"""Status messages as the API answers them."""

from __future__ import annotations

from typing import Any

from quartermaster.site.api.schemas.common import Answer


class StatusMessage(Answer):
    id: int
    message_id: int
    severity: str
    component: str
    client_id: str | None
    dp: str
    deployment_id: str | None
    package_id: str | None
    insertion_strings: list[Any]
    properties: dict[str, Any]
    text: str
    time: str
    received: str


class MessageList(Answer):
    messages: list[StatusMessage]
