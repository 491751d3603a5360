"""Images <-> scaled latents through the model's VAE (the WebUI's encode/decode, fp16 fallback kept)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from inference_container.engine.checkpoint import LoadedModel


def _vae_scale(vae: Any) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
    """(scaling factor, latents mean, latents std); mean/std only for VAEs that declare them."""
    config = vae.config
    mean = getattr(config, "latents_mean", None)
    std = getattr(config, "latents_std", None)
    if mean is None or std is None:
        return float(config.scaling_factor), None, None
    return (
        float(config.scaling_factor),
        torch.tensor(mean).view(1, -1, 1, 1),
        torch.tensor(std).view(1, -1, 1, 1),
    )


@torch.no_grad()
def encode_images(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """Scaled latents of RGB images (all the same size)."""
    vae = model.txt2img.vae
    pixels = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 127.5 - 1.0
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(model.device, vae.dtype)
    # The posterior's mean, not a sample: the VAE's spread is tiny, and a sample would need an RNG
    # the WebUI does not seed either.
    latents = vae.encode(x).latent_dist.mean
    scale, mean, std = _vae_scale(vae)
    if mean is not None:
        latents = (latents - mean.to(latents)) * scale / std.to(latents)
    else:
        latents = latents * scale
    return latents.to(model.dtype)


@torch.no_grad()
def decode_latents(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    vae = model.txt2img.vae
    scale, mean, std = _vae_scale(vae)
    z = latents.to(model.device, vae.dtype)
    z = z * std.to(z) / scale + mean.to(z) if mean is not None else z / scale
    pixels = vae.decode(z).sample
    if torch.isnan(pixels).any() and vae.dtype == torch.float16:
        # fp16 VAEs overflow on some latents; decode that batch in fp32 like --no-half-vae.
        pixels = copy.deepcopy(vae).float().decode(z.float()).sample
    return model.txt2img.image_processor.postprocess(pixels.float(), output_type="pil")
