"""This deployable's copy of the generation contract (written by ``tools/contract``; do not edit).

See ``generation_contract.py`` for what it holds and how to change it.
"""

from .generation_contract import (
    CONTRACT,
    LIMITS,
    TASKS,
    CheckedPayload,
    HiresPlan,
    PayloadRejected,
    Problem,
    SamplerChoice,
    check_payload,
    decode_image,
    depth_problem,
    describe,
    field_spec,
    fields,
    hires_target,
    json_depth,
    resolve_sampler,
    schedule_labels,
    supported_samplers,
)

__all__ = [
    "CONTRACT",
    "LIMITS",
    "TASKS",
    "CheckedPayload",
    "HiresPlan",
    "PayloadRejected",
    "Problem",
    "SamplerChoice",
    "check_payload",
    "decode_image",
    "depth_problem",
    "describe",
    "field_spec",
    "fields",
    "hires_target",
    "json_depth",
    "resolve_sampler",
    "schedule_labels",
    "supported_samplers",
]
