"""Input the database cannot hold is the caller's error (422), never a server failure.

PostgreSQL refuses text with NUL characters and numbers beyond BIGINT; SQLite refuses
numbers beyond 64 bits. Routes bound what they can, and whatever still reaches the database
and is refused there is answered like any other invalid input, in the one error shape.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from quartermaster.site.api.common import error_response


async def invalid_data_handler(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        422,
        "invalid_input",
        "a value in the request cannot be stored: text with a NUL character "
        "or a number out of range",
        "send printable text and numbers within the documented bounds",
    )
