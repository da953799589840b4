"""Typed API errors: each carries its HTTP status and a stable machine-readable code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        title: str | None = None,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.field = field
        self.errors = errors
        self.headers = headers


class BadRequest(ApiError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Forbidden(ApiError):
    """Authenticated, but this caller may not: a 403 (a tenant's key on an admin's route)."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ApiError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(ApiError):
    """The resource existed and was removed for good (an expired artifact)."""

    status = 410
    code = "gone"
    title = "Gone"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"
    title = "Unprocessable content"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class TooManyRequests(ApiError):
    """A caller over its own share (per API key), told when to retry: give `Retry-After`."""

    status = 429
    code = "too_many_requests"
    title = "Too many requests"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The registry (the database) cannot be reached; nothing was written, retry later."""

    code = "database_unavailable"
    title = "Database unavailable"


class Unauthenticated(ApiError):
    """401 with `WWW-Authenticate: Bearer`, whatever was wrong with the key."""

    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})
