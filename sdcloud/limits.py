"""Generation limits and slider bounds, read from the extension's copy of the generation contract
(``sdcloud/contract``, the same bytes the middleware and the engine carry). Checked in the UI so an
artist hears about a bad value before anything is uploaded.
"""

from __future__ import annotations

from typing import Any

from .contract import LIMITS as _LIMITS
from .contract import field_spec


def field_bounds(name: str, task: str = "txt2img") -> tuple[float, float]:
    """(minimum, maximum) of a payload field, as the contract states them."""
    spec = field_spec(task, name)
    if spec is None or "range" not in spec:
        raise KeyError(f"the contract gives {name!r} no range")
    rng = spec["range"]
    return rng["minimum"], rng["maximum"]


SIZE_MULTIPLE: int = _LIMITS["size_multiple"]
MIN_SIDE: int = _LIMITS["min_side"]
MAX_SIDE: int = _LIMITS["max_side"]
MAX_PIXELS: int = _LIMITS["max_pixels"]  # width * height, also for the hires-fix target size

STEPS = field_bounds("steps")
BATCH_SIZE = field_bounds("batch_size")
N_ITER = field_bounds("n_iter")
CFG_SCALE = field_bounds("cfg_scale")
DENOISING_STRENGTH = field_bounds("denoising_strength", "img2img")
HR_SECOND_PASS_STEPS = field_bounds("hr_second_pass_steps")
HR_SCALE = field_bounds("hr_scale")
SEED = field_bounds("seed")

# The middleware's HTTP body limit for a submit (init images travel inline up to it).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_INIT_IMAGE_PIXELS: int = _LIMITS["max_init_image_pixels"]  # the decompression-bomb guard

LIMITS: dict[str, Any] = {
    "width": (MIN_SIDE, MAX_SIDE),
    "height": (MIN_SIDE, MAX_SIDE),
    "size_multiple": SIZE_MULTIPLE,
    "max_pixels": MAX_PIXELS,
    "steps": STEPS,
    "batch_size": BATCH_SIZE,
    "n_iter": N_ITER,
    "cfg_scale": CFG_SCALE,
    "denoising_strength": DENOISING_STRENGTH,
    "hr_second_pass_steps": HR_SECOND_PASS_STEPS,
    "max_body_bytes": MAX_REQUEST_BYTES,
    "max_init_image_pixels": MAX_INIT_IMAGE_PIXELS,
}
