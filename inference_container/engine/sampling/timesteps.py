"""A1111's timestep samplers (``sd_samplers_timesteps_impl``), written for this engine.

DDIM and PLMS walk A1111's grid ``range(0, 1000, 1000 // steps) + 1`` from the top down to its
second entry (the first is only the last step's target), as A1111 v1.10.1 does. UniPC and LCM
step a diffusers scheduler over the same guided eps model (see ``scheduler_loop``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class TimestepSteps(Protocol):
    alphas_cumprod: torch.Tensor

    def model(self, x: torch.Tensor, t: float) -> torch.Tensor: ...
    def begin(self, i: int) -> None: ...
    def end(self, i: int) -> None: ...
    def randn(self, x: torch.Tensor) -> torch.Tensor: ...


def _alphas(s: TimestepSteps, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = s.alphas_cumprod
    alphas = a[timesteps]
    alphas_prev = a[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    return alphas, alphas_prev


def ddim(s: TimestepSteps, x: torch.Tensor, timesteps: torch.Tensor, eta: float = 0.0) -> torch.Tensor:
    alphas, alphas_prev = _alphas(s, timesteps)
    sqrt_one_minus = torch.sqrt(1 - alphas)
    prev = alphas_prev.numpy()
    sigmas = eta * np.sqrt((1 - prev) / (1 - alphas.numpy()) * (1 - alphas.numpy() / prev))
    ones = x.new_ones([x.shape[0], 1, 1, 1])
    for i in range(len(timesteps) - 1):
        s.begin(i)
        index = len(timesteps) - 1 - i
        e_t = s.model(x, float(timesteps[index]))
        a_t = alphas[index].item() * ones
        a_prev = alphas_prev[index].item() * ones
        sigma_t = float(sigmas[index]) * ones
        pred_x0 = (x - sqrt_one_minus[index].item() * ones * e_t) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma_t**2).sqrt() * e_t
        x = a_prev.sqrt() * pred_x0 + dir_xt
        if eta:
            x = x + sigma_t * s.randn(x)
        s.end(i)
    return x


def plms(s: TimestepSteps, x: torch.Tensor, timesteps: torch.Tensor, eta: float = 0.0) -> torch.Tensor:
    alphas, alphas_prev = _alphas(s, timesteps)
    sqrt_one_minus = torch.sqrt(1 - alphas)
    ones = x.new_ones([x.shape[0], 1, 1, 1])
    old_eps: list[torch.Tensor] = []

    def step(x: torch.Tensor, e_t: torch.Tensor, index: int) -> torch.Tensor:
        a_t = alphas[index].item() * ones
        a_prev = alphas_prev[index].item() * ones
        pred_x0 = (x - sqrt_one_minus[index].item() * ones * e_t) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * e_t

    for i in range(len(timesteps) - 1):
        s.begin(i)
        index = len(timesteps) - 1 - i
        t_next = float(timesteps[max(index - 1, 0)])
        e_t = s.model(x, float(timesteps[index]))
        if not old_eps:
            # Pseudo improved Euler for the first step.
            e_t_next = s.model(step(x, e_t, index), t_next)
            e_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = step(x, e_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        s.end(i)
    return x


def scheduler_loop(s: TimestepSteps, x: torch.Tensor, scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    """Step a configured diffusers scheduler (UniPC, LCM) over the guided eps model."""
    for i, t in enumerate(timesteps):
        s.begin(i)
        eps = s.model(scheduler.scale_model_input(x, t), float(t))
        x = scheduler.step(eps, t, x, return_dict=False)[0]
        s.end(i)
    return x
