"""Generation limits, the extension's own copy of the contract's values (a test compares them
with the middleware's copy). Checked in the UI so an artist hears about a bad value before upload.
"""

from __future__ import annotations

from typing import Any

SIZE_MULTIPLE = 8
MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PIXELS = 2048 * 2048  # width * height, also for the hires-fix target size

STEPS = (1, 150)
BATCH_SIZE = (1, 8)
N_ITER = (1, 32)
CFG_SCALE = (0, 30)
DENOISING_STRENGTH = (0, 1)
HR_SECOND_PASS_STEPS = (0, 150)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
MAX_INIT_IMAGE_PIXELS = 2048 * 2048 * 4  # decoded pixels, the server's decompression-bomb guard

# The same values keyed like the middleware's generation_rules.LIMITS, for the cross-side test.
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
