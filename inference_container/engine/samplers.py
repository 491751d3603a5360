"""Sampler names → this engine's implementation of that sampler (``SamplerSpec``).

Names are resolved by the generation contract (aliases, combined names such as "DPM++ 2M Karras",
"automatic"; unknown or unsupported names refused with what works), exactly as the middleware
resolves them at submit. What is left here is the engine's side: the catalog entry's settings and
the sampler parameters (eta, s_churn, s_tmin, s_tmax, s_noise) as the sampler uses them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..contract import PayloadRejected
from ..contract import resolve_sampler as resolve_names
from .contract_errors import contract_error
from .sampling.catalog import (
    AUTOMATIC,
    PARAMETER_DEFAULTS,
    SAMPLER_PARAMETERS,
    SAMPLERS,
    SCHEDULERS,
    SamplerInfo,
)
from .types import SamplerSpec

_SAMPLER_BY_KEY: dict[str, SamplerInfo] = {}
for _entry in SAMPLERS:
    for _key in (_entry.name, *_entry.aliases):
        _SAMPLER_BY_KEY[_key.lower()] = _entry
_SCHEDULE_BY_NAME = {s.name: s for s in SCHEDULERS}


def sampler_entry(name: str) -> SamplerInfo | None:
    """The catalog entry for a WebUI sampler name or alias (case-insensitive), or None."""
    return _SAMPLER_BY_KEY.get(name.strip().lower())


def supported_samplers() -> dict[str, list[str]]:
    """Each supported sampler → the schedule type names it accepts, in the WebUI's order."""
    return {s.name: list(s.schedulers) for s in SAMPLERS if s.supported}


def sampler_spec(name: str, scheduler: str, parameters: Mapping[str, float | None] | None = None) -> SamplerSpec:
    """The spec for a canonical sampler name and schedule-type name (as the contract resolves
    them). Parameters the sampler does not use are dropped; unset ones take A1111's defaults."""
    sampler = _SAMPLER_BY_KEY[name.lower()]
    schedule = _SCHEDULE_BY_NAME[scheduler]
    if schedule.name == AUTOMATIC and sampler.default_scheduler:
        schedule = _SCHEDULE_BY_NAME[sampler.default_scheduler]
    given = parameters or {}
    values: dict[str, float | None] = {}
    for param in SAMPLER_PARAMETERS:
        if param in sampler.parameters:
            default = sampler.eta_default if param == "eta" else PARAMETER_DEFAULTS[param]
            values[param] = float(given[param]) if given.get(param) is not None else default
    return SamplerSpec(
        name=sampler.name,
        scheduler=schedule.name,
        scheduler_label=schedule.label,
        kind=sampler.kind,
        eta=values.get("eta"),
        s_churn=float(values.get("s_churn") or 0.0),
        s_tmin=float(values.get("s_tmin") or 0.0),
        s_tmax=float(values.get("s_tmax") or 0.0),
        s_noise=float(values["s_noise"]) if values.get("s_noise") is not None else 1.0,
        eta_default=sampler.eta_default,
        discard_penultimate_sigma=sampler.discard_penultimate_sigma,
        uses_ensd=sampler.uses_ensd,
    )


def resolve_sampler(
    sampler_name: str | None,
    scheduler: str | None,
    *,
    field_prefix: str = "payload",
    sampler_field: str = "sampler_name",
    scheduler_field: str = "scheduler",
    parameters: Mapping[str, float | None] | None = None,
    refuse_unused_parameters: bool = True,
) -> SamplerSpec:
    """WebUI sampler + schedule-type names (and parameters) to a ``SamplerSpec``, or the
    contract's refusal as an engine error naming the field."""
    try:
        choice = resolve_names(
            sampler_name,
            scheduler,
            prefix=field_prefix,
            sampler_field=sampler_field,
            scheduler_field=scheduler_field,
            parameters=parameters if refuse_unused_parameters else None,
        )
    except PayloadRejected as rejected:
        raise contract_error(rejected.problems[0]) from None
    return sampler_spec(choice.sampler, choice.scheduler, parameters)
