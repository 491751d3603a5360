"""Errors the engine raises, each mapped to one HTTP status by the server.

Every error carries a message a person can act on and, for bad input, the field to fix
(dotted path inside the job document, e.g. ``payload.width``).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the container reports to its caller."""

    status: int = 500
    code: str = "engine_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        body: dict = {"status": self.status, "code": self.code, "detail": self.message}
        if self.field:
            body["field"] = self.field
        return body


class InvalidRequest(EngineError):
    """The job document is malformed or asks for something out of bounds (400)."""

    status = 400
    code = "invalid_request"


class UnsupportedFeature(InvalidRequest):
    """A valid WebUI field that this engine does not implement yet (400, never ignored)."""

    code = "unsupported_feature"


class PayloadTooLarge(EngineError):
    """Input larger than the container accepts (413)."""

    status = 413
    code = "payload_too_large"


class ModelUnavailable(EngineError):
    """A referenced model is missing, unreadable, or does not hash to what the job says (422)."""

    status = 422
    code = "model_unavailable"


class ModelRefused(EngineError):
    """A model file that policy refuses to load, e.g. a pickle ``.ckpt`` without opt-in (422)."""

    status = 422
    code = "model_refused"


class OutOfMemory(EngineError):
    """The device ran out of memory; smaller size or batch will fit (507)."""

    status = 507
    code = "out_of_memory"


class Busy(EngineError):
    """The waiting queue is full (429); retry later."""

    status = 429
    code = "busy"


class NotReady(EngineError):
    """The engine is still starting (503)."""

    status = 503
    code = "not_ready"


class Conflict(EngineError):
    """A job with this id is already queued or running here (409)."""

    status = 409
    code = "conflict"
