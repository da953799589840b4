"""Client exceptions: API problems (RFC 9457, with the API's stable `code`) and local failures."""

from __future__ import annotations

from typing import Any

import httpx


class ScalpelError(Exception):
    """Base class of everything the client raises on purpose."""


class ScalpelConnectionError(ScalpelError):
    """The API could not be reached (after the retries the request was allowed): `url` is the
    full URL tried, `reason` what went wrong (connection refused, timed out, ...)."""

    def __init__(self, method: str, url: str, cause: BaseException | str) -> None:
        reason = cause if isinstance(cause, str) else (str(cause) or type(cause).__name__)
        super().__init__(f"{method} {url}: {reason}")
        self.method = method
        self.url = url
        self.reason = reason


class ScalpelTimeoutError(ScalpelError):
    """wait() gave up before the job reached a terminal state."""


class DigestMismatchError(ScalpelError):
    """A downloaded file's sha-256 differs from the one the API announced."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"{path}: sha-256 {actual} does not match the expected {expected}")
        self.path = path
        self.expected = expected
        self.actual = actual


class ScalpelAPIError(ScalpelError):
    """The API answered with an error status; the fields come from its problem JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.field = field
        self.errors = errors or []
        self.body = body

    @property
    def fields(self) -> list[str]:
        """Every field the problem names: `field`, then those of its `errors`, in order."""
        out = [self.field] if self.field else []
        for err in self.errors:
            name = err.get("field")
            if isinstance(name, str) and name not in out:
                out.append(name)
        return out

    @classmethod
    def from_response(cls, response: httpx.Response) -> ScalpelAPIError:
        """Build from a problem JSON body; anything else keeps the status and the raw text."""
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            errors = body.get("errors")
            return cls(
                status=int(body.get("status") or status),
                code=body["code"],
                title=str(body.get("title") or response.reason_phrase),
                detail=body.get("detail") if isinstance(body.get("detail"), str) else None,
                field=body.get("field") if isinstance(body.get("field"), str) else None,
                errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list)
                else None,
                body=body,
            )  # fmt: skip
        text = response.text.strip()[:500] or None
        return cls(status, f"http_{status}", response.reason_phrase, text, body=body or text)
