"""Every sampler and schedule type of A1111 v1.10.1, as data: what this engine runs and how.

Pure data (no torch): a code generator reads it to build the project-wide contract, and
``samplers.py`` resolves request names against it. Order is the WebUI's
(``sd_samplers.all_samplers``: k-diffusion, then timestep samplers, then LCM;
``sd_schedulers.schedulers``).

``parameters`` are the payload fields a sampler honours, as A1111 passes them: ``eta`` where the
sampler function takes one (k-diffusion's ancestral/SDE samplers default to the
``eta_ancestral`` option, 1.0; DDIM to ``eta_ddim``, 0.0), and the ``s_*`` fields per
``sd_samplers_kdiffusion.sampler_extra_params``.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTOMATIC = "automatic"
KDIFFUSION, TIMESTEPS, LCM = "kdiffusion", "timesteps", "lcm"
SAMPLER_PARAMETERS = ("eta", "s_churn", "s_tmin", "s_tmax", "s_noise")
# A1111's option defaults for the s_* fields (s_tmax 0 means "no upper bound").
PARAMETER_DEFAULTS = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0}
ETA_ANCESTRAL_DEFAULT = 1.0  # opts.eta_ancestral
ETA_DDIM_DEFAULT = 0.0  # opts.eta_ddim
BETA_DIST_ALPHA = 0.6  # opts.beta_dist_alpha
BETA_DIST_BETA = 0.6  # opts.beta_dist_beta


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    label: str
    aliases: tuple[str, ...]
    supported: bool
    unsupported_reason: str = ""


@dataclass(frozen=True)
class SamplerInfo:
    name: str
    aliases: tuple[str, ...]
    default_scheduler: str | None  # the sampler's options["scheduler"]; None = k-diffusion's own
    supported: bool
    unsupported_reason: str
    schedulers: tuple[str, ...]  # schedule-type names accepted, "automatic" first, WebUI order
    parameters: tuple[str, ...]  # payload fields it honours among SAMPLER_PARAMETERS
    eta_default: float | None  # the eta it uses when the request sends none (None: takes no eta)
    kind: str  # "kdiffusion" | "timesteps" | "lcm"
    ignores_schedule_type: bool  # timestep samplers run on their own grid whatever the schedule
    uses_ensd: bool = False  # A1111 writes ENSD into the infotext for these
    discard_penultimate_sigma: bool = False  # one extra sigma computed, the next-to-last dropped
    second_order: bool = False  # two model calls per step


SCHEDULERS: tuple[ScheduleInfo, ...] = (
    ScheduleInfo("automatic", "Automatic", (), True),
    ScheduleInfo("uniform", "Uniform", (), True),
    ScheduleInfo("karras", "Karras", (), True),
    ScheduleInfo("exponential", "Exponential", (), True),
    ScheduleInfo("polyexponential", "Polyexponential", (), True),
    ScheduleInfo("sgm_uniform", "SGM Uniform", ("SGMUniform",), True),
    ScheduleInfo("kl_optimal", "KL Optimal", (), True),
    ScheduleInfo("align_your_steps", "Align Your Steps", (), True),
    ScheduleInfo("simple", "Simple", (), True),
    ScheduleInfo("normal", "Normal", (), True),
    ScheduleInfo("ddim", "DDIM", (), True),
    ScheduleInfo("beta", "Beta", (), True),
)
ALL_SCHEDULES = tuple(s.name for s in SCHEDULERS)

_CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")


def _k(
    name: str,
    aliases: tuple[str, ...],
    default: str | None,
    parameters: tuple[str, ...] = (),
    *,
    supported: bool = True,
    reason: str = "",
    ensd: bool = False,
    discard: bool = False,
    second_order: bool = False,
) -> SamplerInfo:
    return SamplerInfo(
        name=name,
        aliases=aliases,
        default_scheduler=default,
        supported=supported,
        unsupported_reason=reason,
        schedulers=ALL_SCHEDULES if supported else (),
        parameters=parameters,
        eta_default=ETA_ANCESTRAL_DEFAULT if "eta" in parameters else None,
        kind=KDIFFUSION,
        ignores_schedule_type=False,
        uses_ensd=ensd,
        discard_penultimate_sigma=discard,
        second_order=second_order,
    )


def _t(name: str, aliases: tuple[str, ...], parameters: tuple[str, ...] = (), *, supported: bool = True,
       reason: str = "") -> SamplerInfo:
    return SamplerInfo(
        name=name,
        aliases=aliases,
        default_scheduler=None,
        supported=supported,
        unsupported_reason=reason,
        # A1111 keeps whatever schedule type was chosen and samples on its own timestep grid.
        schedulers=ALL_SCHEDULES if supported else (),
        parameters=parameters,
        eta_default=ETA_DDIM_DEFAULT if "eta" in parameters else None,
        kind=TIMESTEPS,
        ignores_schedule_type=True,
    )


SAMPLERS: tuple[SamplerInfo, ...] = (
    _k("DPM++ 2M", ("k_dpmpp_2m",), "karras"),
    _k("DPM++ SDE", ("k_dpmpp_sde",), "karras", ("eta", "s_noise"), second_order=True),
    _k("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), "exponential", ("eta", "s_noise")),
    _k("DPM++ 2M SDE Heun", ("k_dpmpp_2m_sde_heun",), "exponential", ("eta", "s_noise")),
    _k("DPM++ 2S a", ("k_dpmpp_2s_a",), "karras", ("eta", "s_noise"), ensd=True, second_order=True),
    _k("DPM++ 3M SDE", ("k_dpmpp_3m_sde",), "exponential", ("eta", "s_noise"), discard=True),
    # Euler a takes eta but is not in A1111's sampler_extra_params, so s_noise never reaches it.
    _k("Euler a", ("k_euler_a", "k_euler_ancestral"), None, ("eta",), ensd=True),
    _k("Euler", ("k_euler",), None, _CHURN),
    _k("LMS", ("k_lms",), None),
    _k("Heun", ("k_heun",), None, _CHURN, second_order=True),
    _k("DPM2", ("k_dpm_2",), "karras", _CHURN, discard=True, second_order=True),
    _k("DPM2 a", ("k_dpm_2_a",), "karras", ("eta", "s_noise"), ensd=True, discard=True, second_order=True),
    _k(
        "DPM fast",
        ("k_dpm_fast",),
        None,
        supported=False,
        reason="DPM-Solver-fast (its own fixed-order step plan) is not implemented in this engine",
        ensd=True,
    ),
    _k(
        "DPM adaptive",
        ("k_dpm_ad",),
        None,
        supported=False,
        reason="adaptive-step DPM-Solver (an unbounded number of model calls) is not implemented in this engine",
        ensd=True,
    ),
    _k(
        "Restart",
        ("restart",),
        "karras",
        supported=False,
        reason="the Restart sampler is not implemented in this engine yet",
        second_order=True,
    ),
    _t("DDIM", ("ddim",), ("eta",)),
    _t("DDIM CFG++", ("ddim_cfgpp",), supported=False, reason="DDIM CFG++ is not implemented in this engine"),
    _t("PLMS", ("plms",)),
    _t("UniPC", ("unipc",)),
    SamplerInfo(
        name="LCM",
        aliases=("k_lcm",),
        default_scheduler=None,
        supported=True,
        unsupported_reason="",
        schedulers=(AUTOMATIC,),
        parameters=(),
        eta_default=None,
        kind=LCM,
        ignores_schedule_type=False,
    ),
)
