"""Exceptions raised by the SD Cloud client.

Every message is meant for a person: it says what went wrong and, where the server said so, which
field to fix. No message ever carries the API key or a signed URL's query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Job


class SDCloudError(Exception):
    """Base of every error the client raises."""


class NotConfigured(SDCloudError):
    """The API URL or key is missing or malformed in the settings."""


class ConnectionFailed(SDCloudError):
    """The middleware could not be reached (refused, DNS, reset, TLS)."""


class Timeout(SDCloudError):
    """The middleware did not answer in time, or a job did not finish before the deadline."""


@dataclass(frozen=True)
class FieldError:
    """One invalid input, as the server named it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ApiError(SDCloudError):
    """The middleware answered with an error status (problem+json where it could)."""

    def __init__(
        self,
        status: int,
        title: str = "",
        detail: str = "",
        errors: list[FieldError] | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        self.problem: dict[str, Any] = dict(problem or {})
        super().__init__(self._compose())

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors if e.field]

    def _compose(self) -> str:
        head = f"HTTP {self.status}"
        if self.title:
            head += f" {self.title}"
        text = f"{head}: {self.detail}" if self.detail else head
        # The detail often already names the one field; list the rest only when they add something.
        extra = [str(e) for e in self.errors if str(e) not in text]
        if extra:
            text += " (" + "; ".join(extra) + ")"
        return text


class AuthError(ApiError):
    """401: the API key is missing, wrong or revoked."""


class Forbidden(ApiError):
    """403: the key is valid but its user may not do this."""


class NotFound(ApiError):
    """404: no such record, or it belongs to someone else."""


class Conflict(ApiError):
    """409: the record is not in a state that allows this (e.g. cancelling a finished job)."""


class ValidationFailed(ApiError):
    """400 / 422: the request was refused; `.errors` names the fields."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's limit."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(ApiError):
    """5xx: the server failed; the request may be retried later."""


class JobFailed(SDCloudError):
    """A job ended in status "failed"; `.job` holds the final job view."""

    def __init__(self, job: Job) -> None:
        self.job = job
        reason = job.error.message if job.error else "no reason given"
        code = f" [{job.error.code}]" if job.error and job.error.code else ""
        super().__init__(f"job {job.id} failed{code}: {reason}")


class JobCancelled(SDCloudError):
    """A job ended in status "cancelled"; `.job` holds the final job view."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"job {job.id} was cancelled")


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def error_class_for(status: int) -> type[ApiError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return ApiError


def _field_error(item: Any) -> FieldError | None:
    """One entry of a problem's `errors` list; tolerant of the common spellings."""
    if isinstance(item, str):
        return FieldError("", item)
    if not isinstance(item, dict):
        return None
    field = item.get("field") or item.get("name") or item.get("pointer") or ""
    loc = item.get("loc")
    if not field and isinstance(loc, (list, tuple)):
        # pydantic-style location: drop the leading "body" the way a person would read it
        parts = [str(p) for p in loc if p != "body"]
        field = ".".join(parts)
    message = item.get("message") or item.get("msg") or item.get("detail") or ""
    return FieldError(str(field), str(message))


def api_error_from_problem(
    status: int, problem: dict[str, Any] | None, retry_after: float | None = None
) -> ApiError:
    """Build the right ApiError subclass from a problem+json body (or anything JSON-ish)."""
    problem = problem if isinstance(problem, dict) else {}
    title = str(problem.get("title") or problem.get("code") or "")
    detail_raw = problem.get("detail", "")
    errors: list[FieldError] = []
    if isinstance(detail_raw, list):
        # FastAPI's default validation body puts the list in "detail"
        errors.extend(e for e in (_field_error(i) for i in detail_raw) if e)
        detail = "; ".join(str(e) for e in errors)
    else:
        detail = str(detail_raw or problem.get("message") or "")
    raw_errors = problem.get("errors")
    if isinstance(raw_errors, list):
        errors.extend(e for e in (_field_error(i) for i in raw_errors) if e)
    elif isinstance(raw_errors, dict):
        errors.extend(FieldError(str(k), str(v)) for k, v in raw_errors.items())
    if problem.get("field") and not any(e.field == problem["field"] for e in errors):
        errors.insert(0, FieldError(str(problem["field"]), detail))
    cls = error_class_for(status)
    if cls is RateLimited:
        return RateLimited(status, title, detail, errors, problem, retry_after=retry_after)
    return cls(status, title, detail, errors, problem)
