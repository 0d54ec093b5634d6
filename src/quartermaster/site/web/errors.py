"""The one error shape of both web faces, `{"error": {"code", "message", "hint",
"request_id"}}`, and the exception handlers that produce it.

Input the database cannot hold is the caller's error (422), never a server failure:
PostgreSQL refuses text with NUL characters and numbers beyond BIGINT; SQLite refuses
numbers beyond 64 bits. Routes bound what they can, and whatever still reaches the database
and is refused there is answered like any other invalid input, in the one error shape.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quartermaster.core.errors import QMError
from quartermaster.core.logging_setup import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger("quartermaster.site.api")

BodyModel = TypeVar("BodyModel", bound=BaseModel)


def error_response(
    status: int, code: str, message: str, hint: str = "", request_id: str = ""
) -> JSONResponse:
    """The one error shape; `request_id` finds the request's lines in the site's log."""
    request_id = request_id or current_request_id()
    error = {"code": code, "message": message, "hint": hint}
    headers = None
    if request_id:
        error["request_id"] = request_id
        headers = {REQUEST_ID_HEADER: request_id}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def qm_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, QMError):
        raise exc
    return error_response(exc.http_status, exc.code, exc.message, exc.hint)


async def validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    return error_response(
        422,
        "invalid_input",
        f"invalid request: {problems}",
        "see docs/protocol.md for the request shape",
    )


UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's words for such a body


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:  # not UTF-8, or too deep
        return error_response(
            422,
            "invalid_input",
            "the request body is not JSON that can be read: invalid UTF-8, or nested too deep",
            "send UTF-8 JSON; see docs/protocol.md for the request shape",
        )
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def internal_handler(request: Request, exc: Exception) -> JSONResponse:
    """Runs outside the request log's middleware: the ID comes from the request's state."""
    request_id = getattr(request.state, "request_id", "")
    log.error(
        "%s %s failed: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
        extra={"request_id": request_id},
    )
    return error_response(
        500,
        "internal",
        "the site server failed to handle this request",
        f"see the site server's log for request {request_id}; the request changed nothing",
        request_id,
    )


async def invalid_data_handler(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        422,
        "invalid_input",
        "a value in the request cannot be stored: text with a NUL character "
        "or a number out of range",
        "send printable text and numbers within the documented bounds",
    )


def parse_body(model: type[BodyModel], raw: bytes) -> BodyModel:
    """A JSON body read by the route itself, validated as FastAPI would (the same 422)."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
