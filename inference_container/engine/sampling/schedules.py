"""Sigma schedules and timestep grids, as A1111 v1.10.1 computes them.

The model's discrete schedule comes from its training betas the way ldm/sgm build it (betas in
float64, ``alphas_cumprod`` kept as float32, sigmas = sqrt((1 - a) / a) in float32), and maps sigma
to a fractional timestep by log-sigma interpolation (k-diffusion's ``DiscreteSchedule``, no
quantization: A1111's ``enable_quantization`` is off by default). Schedules span the model's whole
range (sigma_max = its largest training sigma, sigma_min = its smallest: 14.6146 and 0.0292 for
SD 1.x) and end with a 0, except KL Optimal, which A1111 ends at sigma_min.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .catalog import BETA_DIST_ALPHA, BETA_DIST_BETA

# NVIDIA's published Align Your Steps sigmas (10 steps), as A1111 ships them.
AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def alphas_cumprod_from_config(config: Mapping[str, Any]) -> torch.Tensor:
    """The 1000 training ``alphas_cumprod`` of a diffusers scheduler config, as ldm/sgm compute them."""
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    trained = config.get("trained_betas")
    if trained is not None:
        betas = torch.tensor(trained, dtype=torch.float64)
    elif kind == "scaled_linear":
        # ldm's "linear" schedule (diffusers calls it scaled_linear): linear in sqrt(beta).
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(f"beta schedule {kind!r} is not supported")
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    return torch.tensor(alphas_cumprod, dtype=torch.float32)


class DiscreteSchedule:
    """The model's training sigmas (ascending) with k-diffusion's sigma <-> timestep maps."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.alphas_cumprod = alphas_cumprod.float()
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma.to(low.device)) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape).to(sigma.device)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()

    def uniform_sigmas(self, n: int) -> torch.Tensor:
        """k-diffusion's ``get_sigmas(n)``: timesteps linspace(999, 0, n)."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        return _append_zero(self.t_to_sigma(t))


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


# --- A1111's schedule functions: (n, sigma_min, sigma_max, model) -> n + 1 sigmas -----------------


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def _from_timesteps(model: DiscreteSchedule, timesteps: torch.Tensor) -> torch.Tensor:
    return _append_zero(torch.stack([model.t_to_sigma(t) for t in timesteps]).float())


def _t_range(model: DiscreteSchedule, sigma_min: float, sigma_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    start = model.sigma_to_t(torch.tensor(sigma_max))
    end = model.sigma_to_t(torch.tensor(sigma_min))
    return start, end


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    start, end = _t_range(model, sigma_min, sigma_max)
    return _from_timesteps(model, torch.linspace(float(start), float(end), n + 1)[:-1])


def normal(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    start, end = _t_range(model, sigma_min, sigma_max)
    return _from_timesteps(model, torch.linspace(float(start), float(end), n))


def simple(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    step = len(model.sigmas) / n
    picked = [float(model.sigmas[-(1 + int(i * step))]) for i in range(n)]
    return torch.tensor([*picked, 0.0], dtype=torch.float32)


def ddim(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    # Every (1000 // n)-th training sigma from index 1 up: more than n of them when n does not
    # divide 1000, exactly as A1111 does.
    step = max(len(model.sigmas) // n, 1)
    picked = [float(model.sigmas[i]) for i in range(1, len(model.sigmas), step)]
    return torch.tensor([*picked[::-1], 0.0], dtype=torch.float32)


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    steps = torch.arange(n + 1)
    return torch.tan(steps / n * alpha_min + (1.0 - steps / n) * alpha_max)


def align_your_steps(n: int, sigma_min: float, sigma_max: float, *, is_sdxl: bool) -> torch.Tensor:
    base = list(AYS_SDXL if is_sdxl else AYS_SD1)
    if n == len(base):
        return torch.tensor([*base, 0.0], dtype=torch.float32)
    # Log-linear interpolation of the published list onto n points.
    xs = np.linspace(0, 1, len(base))
    ys = np.log(base[::-1])
    interpolated = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1].copy()
    return torch.tensor(np.append(interpolated, [0.0]), dtype=torch.float32)


def beta(
    n: int, sigma_min: float, sigma_max: float, alpha: float = BETA_DIST_ALPHA, beta_: float = BETA_DIST_BETA
) -> torch.Tensor:
    # v1.10.1 spreads the beta distribution's quantiles over sigma (not timestep) space.
    from scipy import stats

    quantiles = [stats.beta.ppf(x, alpha, beta_) for x in 1 - np.linspace(0, 1, n)]
    return torch.tensor([*(sigma_min + q * (sigma_max - sigma_min) for q in quantiles), 0.0], dtype=torch.float32)


@dataclass(frozen=True)
class ScheduleRequest:
    name: str  # a catalog schedule name, "automatic" = k-diffusion's own (uniform)
    steps: int
    discard_penultimate: bool = False
    is_sdxl: bool = False


def sigma_schedule(request: ScheduleRequest, model: DiscreteSchedule) -> torch.Tensor:
    """A k-diffusion sampler's sigmas for ``request.steps`` steps (``KDiffusionSampler.get_sigmas``)."""
    n = request.steps + (1 if request.discard_penultimate else 0)
    smin, smax = model.sigma_min, model.sigma_max
    functions: dict[str, Callable[[], torch.Tensor]] = {
        "automatic": lambda: model.uniform_sigmas(n),
        "uniform": lambda: model.uniform_sigmas(n),
        "karras": lambda: karras(n, smin, smax),
        "exponential": lambda: exponential(n, smin, smax),
        "polyexponential": lambda: polyexponential(n, smin, smax),
        "sgm_uniform": lambda: sgm_uniform(n, smin, smax, model),
        "kl_optimal": lambda: kl_optimal(n, smin, smax),
        "align_your_steps": lambda: align_your_steps(n, smin, smax, is_sdxl=request.is_sdxl),
        "simple": lambda: simple(n, smin, smax, model),
        "normal": lambda: normal(n, smin, smax, model),
        "ddim": lambda: ddim(n, smin, smax, model),
        "beta": lambda: beta(n, smin, smax),
    }
    if request.name not in functions:
        raise ValueError(f"unknown schedule {request.name!r}")
    sigmas = functions[request.name]().float()
    if request.discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def a1111_timesteps(steps: int, discard_penultimate: bool = False) -> torch.Tensor:
    """The grid of A1111's timestep samplers (DDIM, PLMS, UniPC): range(0, 1000, 1000 // n) + 1.

    Whatever the schedule type; more than ``steps`` entries when ``steps`` does not divide 1000.
    """
    n = steps + (1 if discard_penultimate else 0)
    return torch.clip(torch.arange(0, 1000, 1000 // n) + 1, 0, 999)
