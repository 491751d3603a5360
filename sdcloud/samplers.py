"""Sampler, schedule-type and upscaler names for the UI's dropdowns, read from the extension's copy
of the generation contract. The payload carries the sampler label and the schedule type's
lowercase name, exactly what A1111's /sdapi/v1 API accepts.
"""

from __future__ import annotations

from .contract import CONTRACT

# Only what the cloud engine runs: an artist never picks a sampler the middleware would refuse.
SAMPLERS: tuple[str, ...] = tuple(s["name"] for s in CONTRACT["samplers"] if s["supported"])
DEFAULT_SAMPLER = "DPM++ 2M"  # the WebUI's UI default (its API's default is Euler)

# (label shown in the UI, name sent in the payload), every schedule type the engine runs.
SCHEDULERS: tuple[tuple[str, str], ...] = tuple(
    (s["label"], s["name"]) for s in CONTRACT["schedulers"] if s["supported"]
)
DEFAULT_SCHEDULE_LABEL = "Automatic"

SCHEDULE_LABELS: tuple[str, ...] = tuple(label for label, _ in SCHEDULERS)
_NAME_BY_LABEL = {label: name for label, name in SCHEDULERS}
_NAMES = {name for _, name in SCHEDULERS}

SAMPLER_SCHEDULES: dict[str, tuple[str, ...]] = {
    s["name"]: tuple(s["schedulers"]) for s in CONTRACT["samplers"] if s["supported"]
}

HIRES_UPSCALERS: tuple[str, ...] = tuple(CONTRACT["hires"]["upscalers"])
DEFAULT_HIRES_UPSCALER: str = CONTRACT["hires"]["default_upscaler"]


def schedule_labels_for(sampler: str) -> list[str]:
    """The schedule-type labels to offer with ``sampler``, in the WebUI's order."""
    allowed = SAMPLER_SCHEDULES.get(sampler, ("automatic",))
    return [label for label, name in SCHEDULERS if name in allowed]


def scheduler_name(label_or_name: str) -> str:
    """The payload name for a schedule type ("Karras" -> "karras"); ValueError if unknown."""
    if label_or_name in _NAME_BY_LABEL:
        return _NAME_BY_LABEL[label_or_name]
    if label_or_name in _NAMES:
        return label_or_name
    raise ValueError(
        f"Schedule type {label_or_name!r} is not supported; pick one of: {', '.join(SCHEDULE_LABELS)}"
    )
