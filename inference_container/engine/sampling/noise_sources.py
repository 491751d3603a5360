"""Where the samplers' stochastic noise comes from, as in A1111, so a seed always gives one picture.

- Per-step noise (ancestral samplers, s_churn, DDIM eta): A1111's ``ImageRNG.next()``, i.e. each
  image's own generator continuing after its initial noise (reseeded with seed + ENSD when
  ``eta_noise_seed_delta`` is set), stacked over the batch.
- SDE samplers: k-diffusion's Brownian tree, one tree per image seeded with the image's seed
  (A1111's ``create_noise_sampler``), spanning the pass's smallest nonzero to largest sigma.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch


class ImageGenerators:
    """``ImageRNG.next()`` after the first draw: one normal sample per image from its generator."""

    def __init__(self, generators: Sequence[torch.Generator], shape: Sequence[int]) -> None:
        self.generators = list(generators)
        self.shape = tuple(shape)

    def next(self, like: torch.Tensor) -> torch.Tensor:
        rows = [
            torch.randn(self.shape, generator=g, device=g.device if g.device.type == "cuda" else "cpu")
            for g in self.generators
        ]
        return torch.stack(rows).to(like.device, like.dtype)


class BrownianNoise:
    """k-diffusion's BrownianTreeNoiseSampler with one tree per image seed."""

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor, sigma_max: torch.Tensor, seeds: Sequence[int]) -> None:
        import torchsde

        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.sign = 1 if t0 < t1 else -1
        t0, t1 = (t0, t1) if t0 < t1 else (t1, t0)
        w0 = torch.zeros_like(x[0])
        self.trees = [
            torchsde.BrownianTree(t0.to(x.device), w0, t1.to(x.device), entropy=int(seed)) for seed in seeds
        ]
        self.device = x.device

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(sigma).to(self.device), torch.as_tensor(sigma_next).to(self.device)
        lo, hi, sign = (a, b, 1) if a < b else (b, a, -1)
        with warnings.catch_warnings():
            # torchsde keeps the tree's ends as Python floats and warns when a float32 query at
            # the very end rounds past them; the values are clamped, as in A1111.
            warnings.simplefilter("ignore", UserWarning)
            w = torch.stack([tree(lo, hi) for tree in self.trees]) * (self.sign * sign)
        return w / (b - a).abs().sqrt()

