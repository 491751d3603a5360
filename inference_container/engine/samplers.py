"""The WebUI's samplers and schedule types, mapped to diffusers schedulers, as data.

Every sampler and scheduler of A1111 v1.10.1 is listed here, either with the diffusers class and
config overrides that reproduce it, or as unsupported with the reason. Nothing is imported from
diffusers: which overrides each class accepts was read from the ``__init__`` signatures of
diffusers 0.42.1 and is kept below (a test checks it against the installed diffusers).

Name resolution follows the WebUI's API (modules/api/api.py + sd_samplers.get_sampler_and_scheduler):
a trailing schedule label on the sampler name ("DPM++ 2M Karras") is split off when no scheduler is
given, "automatic" means the sampler's own default schedule, and sampler aliases ("k_euler_a")
work. Where the WebUI silently falls back to its first sampler for an unknown name, we refuse with
the list of names that work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest, UnsupportedFeature
from .types import SamplerSpec

DEFAULT_SAMPLER = "Euler"  # the API's ``sampler_index`` default
AUTOMATIC = "automatic"


@dataclass(frozen=True)
class SamplerEntry:
    name: str
    aliases: tuple[str, ...]
    default_scheduler: str | None  # the WebUI's ``options["scheduler"]``; None = the class's own spacing
    diffusers_class: str | None  # None = unsupported
    config: Mapping[str, Any] = field(default_factory=dict)
    uses_ensd: bool = False
    unsupported_reason: str = ""
    # For samplers without a default schedule: the spacing the WebUI itself uses under
    # "Automatic", so images match the WebUI's rather than whatever the model's config says.
    automatic_config: Mapping[str, Any] = field(default_factory=dict)


# Under "Automatic", the WebUI's k-diffusion samplers take k-diffusion's own discrete schedule,
# timesteps linspace(999, 0, n): diffusers' "linspace" spacing...
_KDIFFUSION_AUTOMATIC = {"timestep_spacing": "linspace"}
# ...and its timestep samplers (DDIM, PLMS, UniPC) take range(0, 1000, 1000 // n) + 1:
# diffusers' "leading" spacing with steps_offset 1.
_TIMESTEPS_AUTOMATIC = {"timestep_spacing": "leading", "steps_offset": 1}


@dataclass(frozen=True)
class SchedulerEntry:
    name: str
    label: str
    aliases: tuple[str, ...]
    config: Mapping[str, Any] | None  # None = unsupported
    unsupported_reason: str = ""


# In the WebUI's order (sd_samplers.all_samplers): k-diffusion, then timestep samplers, then LCM.
SAMPLERS: tuple[SamplerEntry, ...] = (
    SamplerEntry(
        "DPM++ 2M",
        ("k_dpmpp_2m",),
        "karras",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    # The WebUI's Brownian-tree SDE sampler; diffusers' class needs torchsde (pinned in
    # requirements/container.txt).
    SamplerEntry("DPM++ SDE", ("k_dpmpp_sde",), "karras", "DPMSolverSDEScheduler", {}),
    SamplerEntry(
        "DPM++ 2M SDE",
        ("k_dpmpp_2m_sde",),
        "exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
    ),
    SamplerEntry(
        "DPM++ 2M SDE Heun",
        ("k_dpmpp_2m_sde_heun",),
        "exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
    ),
    SamplerEntry(
        "DPM++ 2S a",
        ("k_dpmpp_2s_a",),
        "karras",
        None,
        uses_ensd=True,
        unsupported_reason="diffusers has no single-step ancestral DPM++ 2S scheduler",
    ),
    SamplerEntry(
        "DPM++ 3M SDE",
        ("k_dpmpp_3m_sde",),
        "exponential",
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 3},
    ),
    SamplerEntry(
        "Euler a",
        ("k_euler_a", "k_euler_ancestral"),
        None,
        "EulerAncestralDiscreteScheduler",
        uses_ensd=True,
        automatic_config=_KDIFFUSION_AUTOMATIC,
    ),
    SamplerEntry(
        "Euler", ("k_euler",), None, "EulerDiscreteScheduler", automatic_config=_KDIFFUSION_AUTOMATIC
    ),
    # LMSDiscreteScheduler needs scipy (pinned in requirements/container.txt).
    SamplerEntry("LMS", ("k_lms",), None, "LMSDiscreteScheduler", automatic_config=_KDIFFUSION_AUTOMATIC),
    SamplerEntry("Heun", ("k_heun",), None, "HeunDiscreteScheduler", automatic_config=_KDIFFUSION_AUTOMATIC),
    SamplerEntry("DPM2", ("k_dpm_2",), "karras", "KDPM2DiscreteScheduler"),
    SamplerEntry("DPM2 a", ("k_dpm_2_a",), "karras", "KDPM2AncestralDiscreteScheduler", uses_ensd=True),
    SamplerEntry(
        "DPM fast",
        ("k_dpm_fast",),
        None,
        None,
        uses_ensd=True,
        unsupported_reason="diffusers has no fixed-step DPM-Solver-fast scheduler",
    ),
    SamplerEntry(
        "DPM adaptive",
        ("k_dpm_ad",),
        None,
        None,
        uses_ensd=True,
        unsupported_reason="diffusers has no adaptive-step DPM-Solver scheduler",
    ),
    SamplerEntry(
        "Restart",
        ("restart",),
        "karras",
        None,
        unsupported_reason="diffusers has no Restart sampler",
    ),
    SamplerEntry("DDIM", ("ddim",), None, "DDIMScheduler", automatic_config=_TIMESTEPS_AUTOMATIC),
    SamplerEntry(
        "DDIM CFG++",
        ("ddim_cfgpp",),
        None,
        None,
        unsupported_reason="diffusers has no CFG++ variant of DDIM",
    ),
    SamplerEntry(
        "PLMS",
        ("plms",),
        None,
        "PNDMScheduler",
        {"skip_prk_steps": True},
        automatic_config=_TIMESTEPS_AUTOMATIC,
    ),
    SamplerEntry("UniPC", ("unipc",), None, "UniPCMultistepScheduler", automatic_config=_TIMESTEPS_AUTOMATIC),
    # LCMScheduler derives its timesteps from its original 50-step schedule; spacing does not apply.
    SamplerEntry("LCM", ("k_lcm",), None, "LCMScheduler"),
)

# Each WebUI schedule type as overrides on the model's scheduler config. The WebUI computes
# sigmas from the model's own 1000 training sigmas; diffusers does the same from the config, so
# these reproduce the WebUI's spacing (small rounding differences noted where they exist).
SCHEDULERS: tuple[SchedulerEntry, ...] = (
    SchedulerEntry("automatic", "Automatic", (), {}),  # replaced by the sampler's default below
    # WebUI ``uniform`` is k-diffusion's get_sigmas(n): timesteps linspace(999, 0, n), i.e.
    # diffusers' "linspace" spacing.
    SchedulerEntry("uniform", "Uniform", (), {"timestep_spacing": "linspace"}),
    SchedulerEntry("karras", "Karras", (), {"use_karras_sigmas": True}),
    SchedulerEntry("exponential", "Exponential", (), {"use_exponential_sigmas": True}),
    # With the WebUI's default rho of 1.0, polyexponential's ramp ** rho is the plain ramp, so its
    # sigmas are exactly the exponential schedule's.
    SchedulerEntry("polyexponential", "Polyexponential", (), {"use_exponential_sigmas": True}),
    # WebUI ``sgm_uniform``: linspace(999, 0, n + 1) without its last point, which is diffusers'
    # "trailing" spacing (999, 999 - 1000/n, ...).
    SchedulerEntry("sgm_uniform", "SGM Uniform", ("SGMUniform",), {"timestep_spacing": "trailing"}),
    SchedulerEntry(
        "kl_optimal",
        "KL Optimal",
        (),
        None,
        "diffusers has no KL-optimal (arctan) sigma schedule",
    ),
    SchedulerEntry(
        "align_your_steps",
        "Align Your Steps",
        (),
        None,
        "diffusers' Align Your Steps is a fixed list of timesteps, not a scheduler setting",
    ),
    # WebUI ``simple``: every (1000/n)-th training sigma from the top, 999 - int(i * 1000/n); that
    # is diffusers' "trailing" spacing up to rounding (round instead of floor).
    SchedulerEntry("simple", "Simple", (), {"timestep_spacing": "trailing"}),
    # WebUI ``normal`` (non-SGM): t = linspace(999, 0, n), the same points as ``uniform``.
    SchedulerEntry("normal", "Normal", (), {"timestep_spacing": "linspace"}),
    # WebUI ``ddim``: training sigmas at 1, 1 + 1000//n, 1 + 2*(1000//n), ...: diffusers' "leading"
    # spacing with steps_offset 1.
    SchedulerEntry("ddim", "DDIM", (), {"timestep_spacing": "leading", "steps_offset": 1}),
    # Beta schedule with the WebUI's default alpha = beta = 0.6, which diffusers also uses.
    SchedulerEntry("beta", "Beta", (), {"use_beta_sigmas": True}),
)

# The config keys each class's __init__ accepts among those we may override (diffusers 0.42.1).
_SPACING = frozenset({"timestep_spacing", "steps_offset"})
_SIGMAS = frozenset({"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"})
_DPM_MULTISTEP = frozenset({"algorithm_type", "solver_order", "solver_type"})
ACCEPTED_OVERRIDES: Mapping[str, frozenset[str]] = {
    "DPMSolverMultistepScheduler": _SPACING | _SIGMAS | _DPM_MULTISTEP,
    "DPMSolverSDEScheduler": _SPACING | _SIGMAS,
    "EulerAncestralDiscreteScheduler": _SPACING,
    "EulerDiscreteScheduler": _SPACING | _SIGMAS,
    "LMSDiscreteScheduler": _SPACING | _SIGMAS,
    "HeunDiscreteScheduler": _SPACING | _SIGMAS,
    "KDPM2DiscreteScheduler": _SPACING | _SIGMAS,
    "KDPM2AncestralDiscreteScheduler": _SPACING | _SIGMAS,
    "DDIMScheduler": _SPACING,
    "PNDMScheduler": _SPACING | {"skip_prk_steps"},
    "UniPCMultistepScheduler": _SPACING | _SIGMAS | {"solver_order", "solver_type"},
    "LCMScheduler": _SPACING,
}

_SAMPLER_BY_KEY: dict[str, SamplerEntry] = {}
for _entry in SAMPLERS:
    for _key in (_entry.name, *_entry.aliases):
        _SAMPLER_BY_KEY[_key.lower()] = _entry

_SCHEDULER_BY_KEY: dict[str, SchedulerEntry] = {}
for _sched in SCHEDULERS:
    for _key in (_sched.name, _sched.label, *_sched.aliases):
        _SCHEDULER_BY_KEY[_key.lower()] = _sched

_SCHEDULER_BY_NAME = {s.name: s for s in SCHEDULERS}


def sampler_entry(name: str) -> SamplerEntry | None:
    """The sampler for a WebUI name or alias (case-insensitive), or None."""
    return _SAMPLER_BY_KEY.get(name.strip().lower())


def scheduler_entry(name: str) -> SchedulerEntry | None:
    """The schedule type for a WebUI name, label or alias (case-insensitive), or None."""
    return _SCHEDULER_BY_KEY.get(name.strip().lower())


def _effective_scheduler(sampler: SamplerEntry, scheduler: SchedulerEntry) -> SchedulerEntry:
    if scheduler.name == AUTOMATIC and sampler.default_scheduler:
        return _SCHEDULER_BY_NAME[sampler.default_scheduler]
    return scheduler


def _combination_problem(sampler: SamplerEntry, scheduler: SchedulerEntry) -> str | None:
    """Why this supported sampler cannot run this schedule type, or None if it can."""
    effective = _effective_scheduler(sampler, scheduler)
    if effective.config is None:
        return f"schedule type {effective.label!r} is not supported: {effective.unsupported_reason}"
    accepted = ACCEPTED_OVERRIDES[sampler.diffusers_class or ""]
    keys = set(effective.config) | (set(sampler.automatic_config) if effective.name == AUTOMATIC else set())
    missing = sorted(keys - accepted)
    if missing:
        return (
            f"sampler {sampler.name!r} ({sampler.diffusers_class}) cannot use schedule type "
            f"{effective.label!r}: the scheduler has no {', '.join(missing)} setting"
        )
    return None


def supported_samplers() -> dict[str, list[str]]:
    """Each supported sampler → the schedule type names it accepts, in the WebUI's order."""
    table: dict[str, list[str]] = {}
    for sampler in SAMPLERS:
        if sampler.diffusers_class is None:
            continue
        table[sampler.name] = [s.name for s in SCHEDULERS if _combination_problem(sampler, s) is None]
    return table


def _split_combined_name(name: str) -> tuple[str, SchedulerEntry | None]:
    """Split a trailing schedule label ("DPM++ 2M Karras") off a sampler name, as the WebUI does.

    The WebUI walks its schedulers in order and strips every label (or alias) it finds at the
    end, the last one found winning. Unlike the WebUI we ignore case, as for every other name.
    """
    found: SchedulerEntry | None = None
    for sched in SCHEDULERS:
        for option in (sched.label, *sched.aliases):
            if name.lower().endswith(" " + option.lower()):
                found = sched
                name = name[: -(len(option) + 1)]
                break
    return name, found


def requested_scheduler(sampler_name: str | None, scheduler: str | None) -> str | None:
    """The schedule type a request names itself (explicitly or at the end of a combined sampler
    name), as the WebUI's API stores it in ``p.scheduler``; None when it leaves it automatic.

    The hires pass inherits this (not the resolved default), like the WebUI's ``hr_scheduler``.
    """
    explicit = (scheduler or "").strip()
    if explicit and explicit.lower() != AUTOMATIC:
        return explicit
    name = (sampler_name or "").strip()
    if not name or sampler_entry(name) is not None:
        return None
    base, suffix = _split_combined_name(name)
    entry = sampler_entry(base) if suffix is not None else None
    if suffix is None or entry is None or suffix.name in (AUTOMATIC, entry.default_scheduler):
        # The WebUI turns a suffix naming the sampler's own default back into "Automatic".
        return None
    return suffix.label


def resolve_sampler(
    sampler_name: str | None,
    scheduler: str | None,
    *,
    field_prefix: str = "payload",
    sampler_field: str = "sampler_name",
    scheduler_field: str = "scheduler",
) -> SamplerSpec:
    """Resolve WebUI sampler + schedule type names to a diffusers scheduler configuration.

    ``sampler_name`` None or "" means the API default ("Euler"); ``scheduler`` None, "" or
    "Automatic" means the sampler's default schedule, or the one named at the end of a combined
    sampler name. Raises InvalidRequest (unknown names) or UnsupportedFeature (known, but not
    available here), naming the field and listing what works.
    """
    sampler_path = f"{field_prefix}.{sampler_field}"
    scheduler_path = f"{field_prefix}.{scheduler_field}"
    supported = supported_samplers()

    raw_name = (sampler_name or "").strip() or DEFAULT_SAMPLER
    sampler = sampler_entry(raw_name)
    suffix_scheduler: SchedulerEntry | None = None
    if sampler is None:
        base, suffix_scheduler = _split_combined_name(raw_name)
        sampler = sampler_entry(base) if suffix_scheduler is not None else None
    if sampler is None:
        raise InvalidRequest(
            f"unknown sampler {raw_name!r}; supported samplers: {', '.join(supported)}",
            field=sampler_path,
        )
    if sampler.diffusers_class is None:
        raise UnsupportedFeature(
            f"sampler {sampler.name!r} is not supported ({sampler.unsupported_reason}); "
            f"supported samplers: {', '.join(supported)}",
            field=sampler_path,
        )

    requested = (scheduler or "").strip()
    if requested and requested.lower() != AUTOMATIC:
        chosen = scheduler_entry(requested)
        if chosen is None:
            raise InvalidRequest(
                f"unknown schedule type {requested!r}; schedule types for {sampler.name!r}: "
                f"{', '.join(supported[sampler.name])}",
                field=scheduler_path,
            )
        problem_field = scheduler_path
    elif suffix_scheduler is not None:
        chosen = suffix_scheduler
        problem_field = sampler_path
    else:
        chosen = _SCHEDULER_BY_NAME[AUTOMATIC]
        problem_field = scheduler_path

    problem = _combination_problem(sampler, chosen)
    if problem:
        raise UnsupportedFeature(
            f"{problem}; schedule types for {sampler.name!r}: {', '.join(supported[sampler.name])}",
            field=problem_field,
        )

    effective = _effective_scheduler(sampler, chosen)
    config = dict(sampler.config)
    config.update(effective.config or {})
    if effective.name == AUTOMATIC:
        config.update(sampler.automatic_config)
    return SamplerSpec(
        name=sampler.name,
        scheduler=effective.name,
        scheduler_label=effective.label,
        diffusers_class=sampler.diffusers_class,
        config=config,
        uses_ensd=sampler.uses_ensd,
    )
