"""The WebUI's initial noise, image by image, so a seed gives the same picture as in the WebUI.

Each image gets its own generator seeded with its seed (``torch.manual_seed(seed)`` semantics);
a variation seed is mixed in by spherical interpolation; ``seed_resize_from`` draws the noise at
another size and pastes it centred, so a composition found at one size survives a resize.
Noise is drawn on the GPU when the model runs there (A1111's default "GPU" RNG) and on the CPU
otherwise; the two differ for the same seed, hence ``rng_name`` for the infotext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def rng_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    return device if device.type == "cuda" else torch.device("cpu")


def rng_name(device: torch.device | str) -> str:
    """``GPU`` or ``CPU``: what A1111's ``RNG:`` infotext field calls the noise source."""
    return "GPU" if rng_device(device).type == "cuda" else "CPU"


def create_generator(seed: int, device: torch.device | str) -> torch.Generator:
    generator = torch.Generator(device=rng_device(device))
    generator.manual_seed(int(seed))
    return generator


def randn(seed: int, shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """Noise from a fresh generator at ``seed``: what ``torch.manual_seed(seed); torch.randn(...)`` gives."""
    return torch.randn(tuple(shape), generator=create_generator(seed, device), device=rng_device(device))


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The WebUI's spherical interpolation, quirks kept (norms along dim 1, the near-parallel fallback)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(
        1
    ) * high


@dataclass
class ImageNoise:
    """First noise for a batch, plus the per-image generators the sampler keeps drawing from."""

    noise: torch.Tensor  # (batch, channels, height, width) on the RNG device, float32
    generators: list[torch.Generator]
    rng_name: str


def image_noise(
    shape: Sequence[int],
    seeds: Sequence[int],
    *,
    device: torch.device | str,
    subseeds: Sequence[int] | None = None,
    subseed_strength: float = 0.0,
    seed_resize_from_w: int = 0,
    seed_resize_from_h: int = 0,
    scale_factor: int = 8,
    eta_noise_seed_delta: int = 0,
) -> ImageNoise:
    """Noise of ``shape`` = (channels, latent height, latent width) for each seed, as the WebUI draws it.

    ``seed_resize_from_*`` are in pixels (0 = off); ``scale_factor`` converts them to latent cells.
    With ``eta_noise_seed_delta`` (A1111's ENSD) the generators the sampler keeps drawing from are
    reseeded with seed + delta once the first noise is drawn, as ``ImageRNG.first`` does.
    """
    shape = tuple(int(s) for s in shape)
    if seed_resize_from_h > 0 and seed_resize_from_w > 0:
        noise_shape = (
            shape[0],
            int(seed_resize_from_h) // scale_factor,
            int(seed_resize_from_w) // scale_factor,
        )
    else:
        noise_shape = shape
    generators = [create_generator(seed, device) for seed in seeds]
    dev = rng_device(device)
    images = []
    for i, (seed, generator) in enumerate(zip(seeds, generators, strict=True)):
        subnoise = None
        if subseeds is not None and subseed_strength != 0:
            subseed = subseeds[i] if i < len(subseeds) else 0
            subnoise = randn(subseed, noise_shape, device)
        if noise_shape != shape:
            noise = randn(seed, noise_shape, device)
        else:
            noise = torch.randn(shape, generator=generator, device=dev)
        if subnoise is not None:
            noise = slerp(subseed_strength, noise, subnoise)
        if noise_shape != shape:
            noise = _paste_centred(noise, torch.randn(shape, generator=generator, device=dev))
        images.append(noise)
    if eta_noise_seed_delta:
        generators = [create_generator(seed + int(eta_noise_seed_delta), device) for seed in seeds]
    return ImageNoise(noise=torch.stack(images), generators=generators, rng_name=rng_name(device))


def _paste_centred(small: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
    """Put ``small`` in the middle of ``canvas``, cropping whichever is larger (the WebUI's arithmetic)."""
    dx = (canvas.shape[2] - small.shape[2]) // 2
    dy = (canvas.shape[1] - small.shape[1]) // 2
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    canvas[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return canvas
