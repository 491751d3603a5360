"""Live previews: a cheap latent → RGB approximation of the current prediction, as a small JPEG.

This is the WebUI's "Approx cheap" live preview: each latent channel contributes a fixed RGB
colour (one linear map, no VAE), so a preview costs microseconds and no GPU memory. Coefficients
are the WebUI's (modules/sd_vae_approx.py), one table for the SD 1.x/2.x latent space and one
for SDXL's. A batch is shown as one row, like the WebUI's progress grid.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

# latent channel → (R, G, B) contribution
_SD_COEFFICIENTS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
_SDXL_COEFFICIENTS = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)
JPEG_QUALITY = 80


def cheap_rgb(latents: torch.Tensor, *, is_sdxl: bool) -> torch.Tensor:
    """(batch, 3, h, w) in [0, 1] from (batch, 4, h, w) latents (scaled, as the UNet sees them)."""
    table = _SDXL_COEFFICIENTS if is_sdxl else _SD_COEFFICIENTS
    coefficients = torch.tensor(table, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("blhw,lr->brhw", latents[:, : coefficients.shape[0]].float(), coefficients)
    return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


def preview_jpeg(latents: torch.Tensor, *, is_sdxl: bool) -> bytes:
    """The batch's approximate images side by side, as JPEG bytes (latent resolution: a 512×512
    image gives a 64×64 preview, a few KB)."""
    rgb = cheap_rgb(latents, is_sdxl=is_sdxl)
    row = torch.cat(list(rgb), dim=2)  # (3, h, w * batch)
    pixels = (row.permute(1, 2, 0) * 255).round().to(torch.uint8).cpu().numpy()
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def wants_preview(step_in_pass: int, every_n_steps: int) -> bool:
    """Whether the step just finished (1-based within its pass) should yield a preview; every
    ``every_n_steps`` steps, none when it is 0 or negative (the WebUI's -1: only the result)."""
    return every_n_steps > 0 and step_in_pass % every_n_steps == 0
