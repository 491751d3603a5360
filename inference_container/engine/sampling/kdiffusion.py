"""The k-diffusion samplers A1111 v1.10.1 offers, written for this engine.

Each follows the published algorithm as k-diffusion 0.1.1 implements it (the version A1111 pins),
so that the same sigmas, model and noise give the same latents. A sampler gets a ``Steps``
object: ``model(x, sigma)`` is the guided denoiser, ``begin(i)`` / ``end(i)`` bracket step ``i``
(the per-step control and progress), ``randn(x)`` is the next per-image noise (A1111 routes
k-diffusion's ``torch.randn_like`` to the image generators) and ``brownian(sigma, sigma_next)``
the SDE samplers' Brownian-tree noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch


class Steps(Protocol):
    def model(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...
    def begin(self, i: int) -> None: ...
    def end(self, i: int) -> None: ...
    def randn(self, x: torch.Tensor) -> torch.Tensor: ...
    def brownian(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Params:
    eta: float = 1.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The Karras ODE derivative (A1111's own ``to_d``: sigma used as a scalar)."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_down, sigma_up) of an ancestral step."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(
        sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    )
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _sigma_fn(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _t_fn(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


def _churn(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, i: int, p: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras et al.'s Algorithm 2 noise increase (s_churn); returns (x, sigma_hat)."""
    if p.s_churn <= 0:
        # gamma is 0: the noise k-diffusion draws here is never used, so it is not drawn.
        return x, sigmas[i]
    gamma = min(p.s_churn / (len(sigmas) - 1), 2**0.5 - 1) if p.s_tmin <= sigmas[i] <= p.s_tmax else 0.0
    eps = s.randn(x) * p.s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def euler(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        x, sigma_hat = _churn(s, x, sigmas, i, p)
        denoised = s.model(x, sigma_hat)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
        s.end(i)
    return x


def euler_ancestral(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], p.eta)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + s.randn(x) * p.s_noise * sigma_up
        s.end(i)
    return x


def heun(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        x, sigma_hat = _churn(s, x, sigmas, i, p)
        denoised = s.model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], s.model(x_2, sigmas[i + 1]))
            x = x + (d + d_2) / 2 * dt
        s.end(i)
    return x


def dpm_2(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        x, sigma_hat = _churn(s, x, sigmas, i, p)
        denoised = s.model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            d_2 = to_d(x_2, sigma_mid, s.model(x_2, sigma_mid))
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
        s.end(i)
    return x


def dpm_2_ancestral(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], p.eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            d_2 = to_d(x_2, sigma_mid, s.model(x_2, sigma_mid))
            x = x + d_2 * (sigma_down - sigmas[i])
        x = x + s.randn(x) * p.s_noise * sigma_up
        s.end(i)
    return x


def _lms_coefficient(order: int, t: list[float], i: int, j: int) -> float:
    from scipy import integrate

    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


def lms(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params, order: int = 4) -> torch.Tensor:
    points = [float(v) for v in sigmas.detach().cpu().numpy()]
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        cur_order = min(i + 1, order)
        coeffs = [_lms_coefficient(cur_order, points, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=False))
        s.end(i)
    return x


def dpmpp_2m(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    old_denoised = None
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t_fn(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
        s.end(i)
    return x


def dpmpp_2s_ancestral(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], p.eta)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            h = t_next - t
            t_mid = t + 0.5 * h
            x_2 = (_sigma_fn(t_mid) / _sigma_fn(t)) * x - (-h * 0.5).expm1() * denoised
            denoised_2 = s.model(x_2, _sigma_fn(t_mid))
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + s.randn(x) * p.s_noise * sigma_up
        s.end(i)
    return x


def dpmpp_sde(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params, r: float = 0.5) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
            h = t_next - t
            t_mid = t + h * r
            fac = 1 / (2 * r)
            # First substep, to the midpoint.
            sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(t_mid), p.eta)
            t_down = _t_fn(sd)
            x_2 = (_sigma_fn(t_down) / _sigma_fn(t)) * x - (t - t_down).expm1() * denoised
            x_2 = x_2 + s.brownian(_sigma_fn(t), _sigma_fn(t_mid)) * p.s_noise * su
            denoised_2 = s.model(x_2, _sigma_fn(t_mid))
            # Second substep, the full step with the blended prediction.
            sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(t_next), p.eta)
            t_next_down = _t_fn(sd)
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (_sigma_fn(t_next_down) / _sigma_fn(t)) * x - (t - t_next_down).expm1() * denoised_d
            x = x + s.brownian(_sigma_fn(t), _sigma_fn(t_next)) * p.s_noise * su
        s.end(i)
    return x


def _dpmpp_2m_sde(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params, solver_type: str) -> torch.Tensor:
    old_denoised = None
    h_last = h = None
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            eta_h = p.eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if p.eta:
                x = x + s.brownian(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * p.s_noise
        old_denoised = denoised
        h_last = h
        s.end(i)
    return x


def dpmpp_2m_sde(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    return _dpmpp_2m_sde(s, x, sigmas, p, "midpoint")


def dpmpp_2m_sde_heun(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    return _dpmpp_2m_sde(s, x, sigmas, p, "heun")


def dpmpp_3m_sde(s: Steps, x: torch.Tensor, sigmas: torch.Tensor, p: Params) -> torch.Tensor:
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        s.begin(i)
        denoised = s.model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            h_eta = h * (p.eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                d = (denoised - denoised_1) / (h_1 / h)
                x = x + (h_eta.neg().expm1() / h_eta + 1) * d
            if p.eta:
                x = x + s.brownian(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * p.eta).expm1().neg().sqrt() * p.s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
        s.end(i)
    return x


Sampler = Callable[[Steps, torch.Tensor, torch.Tensor, Params], torch.Tensor]

# A1111 sampler name -> algorithm.
ALGORITHMS: dict[str, Sampler] = {
    "DPM++ 2M": dpmpp_2m,
    "DPM++ SDE": dpmpp_sde,
    "DPM++ 2M SDE": dpmpp_2m_sde,
    "DPM++ 2M SDE Heun": dpmpp_2m_sde_heun,
    "DPM++ 2S a": dpmpp_2s_ancestral,
    "DPM++ 3M SDE": dpmpp_3m_sde,
    "Euler a": euler_ancestral,
    "Euler": euler,
    "LMS": lms,
    "Heun": heun,
    "DPM2": dpm_2,
    "DPM2 a": dpm_2_ancestral,
}
# The samplers that take A1111's Brownian-tree noise sampler ("brownian_noise").
BROWNIAN = frozenset({"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"})
