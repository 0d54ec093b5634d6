"""What the request models of every resource share: closed bodies, bounded numbers and
times with a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from quartermaster.core.errors import InvalidInput
from quartermaster.core.ids import normalize_object_id

MAX_INT = 2**31 - 1  # query numbers beyond this cannot name a row (and overflow SQL)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


TimeText = Annotated[str, Field(min_length=1, max_length=100)]
#: A package, deployment or application ID in a path, query or body: qm100001 is QM100001.
ObjectId = Annotated[str, AfterValidator(normalize_object_id)]


def aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            f"{what} has no time zone", "give times with a zone, e.g. 2026-12-01T22:00Z"
        )
    return value


class Answer(BaseModel):
    """A JSON answer: the fields named are always there; others pass through unchanged, so
    the document describes the answer without trimming it."""

    model_config = ConfigDict(extra="allow")


class ScheduleArguments:
    """The schedule fields a new deployment shares with a deployment of an application, as
    the keyword arguments the deployment services take."""

    KEYS = (
        "available",
        "deadline",
        "expires",
        "rerun",
        "override_maintenance",
        "phases",
        "success_threshold",
        "error_threshold",
    )

    def schedule(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.KEYS}
