"""Sampler and schedule-type names as the A1111 v1.10 UI shows them (our own copy of the data;
a test checks it against the WebUI manifest). The payload carries the sampler label and the
scheduler's lowercase name, exactly what A1111's /sdapi/v1 API accepts.
"""

from __future__ import annotations

SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DDIM",
    "PLMS",
    "UniPC",
    "LCM",
)
DEFAULT_SAMPLER = "DPM++ 2M"

# (label shown in the UI, name sent in the payload)
SCHEDULERS: tuple[tuple[str, str], ...] = (
    ("Automatic", "automatic"),
    ("Uniform", "uniform"),
    ("Karras", "karras"),
    ("Exponential", "exponential"),
    ("Polyexponential", "polyexponential"),
    ("SGM Uniform", "sgm_uniform"),
    ("KL Optimal", "kl_optimal"),
    ("Align Your Steps", "align_your_steps"),
    ("Simple", "simple"),
    ("Normal", "normal"),
    ("DDIM", "ddim"),
    ("Beta", "beta"),
)
DEFAULT_SCHEDULE_LABEL = "Automatic"

SCHEDULE_LABELS: tuple[str, ...] = tuple(label for label, _ in SCHEDULERS)
_NAME_BY_LABEL = {label: name for label, name in SCHEDULERS}
_NAMES = {name for _, name in SCHEDULERS}

# The schedule types the cloud engine can run with each sampler (diffusers has no karras /
# exponential / beta sigmas for ancestral Euler or the timestep samplers). The UI offers only
# these, so an artist never picks a pair the middleware would refuse; a cross test holds this
# table equal to the engine's and the middleware's.
_SPACINGS = ("automatic", "uniform", "sgm_uniform", "simple", "normal", "ddim")
_ALL_SCHEDULES = ("automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform",
                  "simple", "normal", "ddim", "beta")
SAMPLER_SCHEDULES: dict[str, tuple[str, ...]] = {
    name: (_SPACINGS if name in ("Euler a", "DDIM", "PLMS", "LCM") else _ALL_SCHEDULES) for name in SAMPLERS
}


def schedule_labels_for(sampler: str) -> list[str]:
    """The schedule-type labels to offer with ``sampler``, in the WebUI's order."""
    allowed = SAMPLER_SCHEDULES.get(sampler, ("automatic",))
    return [label for label, name in SCHEDULERS if name in allowed]


# A1111's hires-fix upscalers that need no extra model files; the latent ones upscale in latent space.
HIRES_UPSCALERS: tuple[str, ...] = (
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
    "None",
    "Lanczos",
    "Nearest",
)
DEFAULT_HIRES_UPSCALER = "Latent"


def scheduler_name(label_or_name: str) -> str:
    """The payload name for a schedule type ("Karras" -> "karras"); ValueError if unknown."""
    if label_or_name in _NAME_BY_LABEL:
        return _NAME_BY_LABEL[label_or_name]
    if label_or_name in _NAMES:
        return label_or_name
    raise ValueError(
        f"Schedule type {label_or_name!r} is not supported; pick one of: {', '.join(SCHEDULE_LABELS)}"
    )
