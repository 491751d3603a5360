"""Errors the domain and the services raise; the API maps each to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field, named by its dotted path (e.g. ``payload.width``)."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    """Base of every error with a message a person can act on."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request asks for something malformed or out of bounds (400)."""

    code = "invalid_request"

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        if message is None:
            message = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
        super().__init__(message)
        self.errors = list(errors)


class ModelUnavailable(InvalidInput):
    """The request names a model this deployment does not have (400, with the field it came from)."""

    code = "model_unavailable"


class NotFound(DomainError):
    """The record does not exist, or belongs to someone the caller may not see (404)."""

    code = "not_found"


class IllegalTransition(DomainError):
    """A status change the job state machine forbids, e.g. cancelling a finished job (409)."""

    code = "illegal_transition"

    def __init__(self, job_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"job {job_id} is {from_status}; it cannot become {to_status}")
        self.job_id = job_id
        self.from_status = from_status
        self.to_status = to_status


class Conflict(DomainError):
    """The request contradicts the record's current state (409)."""

    code = "conflict"


class IdempotencyMismatch(DomainError):
    """An Idempotency-Key was reused with a different request body (422)."""

    code = "idempotency_key_reused"


class Unauthorized(DomainError):
    """No valid API key (401)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The caller is known but may not do this, or a signed URL is invalid or expired (403)."""

    code = "forbidden"
