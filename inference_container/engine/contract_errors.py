"""The contract's problems as the engine's errors (same field, same words)."""

from __future__ import annotations

from ..contract import Problem
from ..errors import EngineError, InvalidRequest, PayloadTooLarge, UnsupportedFeature

_ERROR_BY_CODE: dict[str, type[EngineError]] = {
    "invalid": InvalidRequest,
    "unsupported": UnsupportedFeature,
    "too_large": PayloadTooLarge,
}


def contract_error(problem: Problem) -> EngineError:
    """The engine's error for one of the contract's problems, its field and words unchanged."""
    return _ERROR_BY_CODE.get(problem.code, InvalidRequest)(problem.message, field=problem.field or None)
