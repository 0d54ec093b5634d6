"""Typed errors that carry what the user must do next."""

from __future__ import annotations


class QMError(Exception):
    """Base of every error a user may see: a message and a hint for what to do."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidInput(QMError):
    code = "invalid_input"
    http_status = 422


class NotFound(QMError):
    code = "not_found"
    http_status = 404


class Conflict(QMError):
    code = "conflict"
    http_status = 409


class Unauthorized(QMError):
    code = "unauthorized"
    http_status = 401


class Forbidden(QMError):
    code = "forbidden"
    http_status = 403


class SourceError(InvalidInput):
    """A package source folder that cannot be snapshot as it is."""

    code = "bad_source"


class IntegrityError(QMError):
    """Bytes or metadata that do not match what the site published."""

    code = "integrity"
    http_status = 422


class HashMismatch(IntegrityError):
    code = "hash_mismatch"

    def __init__(self, what: str, expected: str, actual: str, hint: str = "") -> None:
        super().__init__(
            f"{what}: SHA-256 is {actual}, expected {expected}",
            hint or "the copy is damaged or was altered; fetch it again from another source",
        )
        self.expected = expected
        self.actual = actual


class SignatureError(IntegrityError):
    code = "bad_signature"
