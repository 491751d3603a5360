"""The model as A1111's samplers see it: a UNet behind k-diffusion's discrete denoiser and CFG.

``UNetModel`` calls the diffusers UNet with the pass's text conditioning (and SDXL's pooled
embedding + size ids); ``KarrasDenoiser`` turns it into k-diffusion's D(x, sigma) (CompVis eps
or v denoiser: c_in scaling, sigma -> fractional timestep); ``TimestepEpsModel`` gives the timestep
samplers eps(x, t). Both run classifier-free guidance the WebUI's way: one batch of [cond, uncond],
``uncond + (cond - uncond) * scale`` for every scale (at exactly 1 that is the cond result, so the
uncond half is skipped there), and remember the last conditional prediction, which A1111 returns
when sampling is interrupted or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .schedules import DiscreteSchedule


@dataclass
class PassConditioning:
    """Text conditioning for one pass, batch already repeated (B rows each)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    pooled: torch.Tensor | None = None
    uncond_pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None  # SDXL (B, 6): original size, crop, target size


class UNetModel:
    """eps or v of the UNet at fractional timesteps, float32 in and out."""

    def __init__(self, unet: Any, dtype: torch.dtype, prediction_type: str) -> None:
        self.unet = unet
        self.dtype = dtype
        self.v_prediction = prediction_type == "v_prediction"

    def __call__(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor | None,
        time_ids: torch.Tensor | None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if pooled is not None:
            kwargs["added_cond_kwargs"] = {
                "text_embeds": pooled.to(self.dtype),
                "time_ids": time_ids.to(self.dtype) if time_ids is not None else None,
            }
        out = self.unet(
            x.to(self.dtype), t.to(x.device), encoder_hidden_states=context.to(self.dtype), return_dict=False, **kwargs
        )[0]
        return out.float()


class _Guided:
    def __init__(self, model: UNetModel, cond: PassConditioning, cfg_scale: float) -> None:
        self.model = model
        self.cond = cond
        self.cfg_scale = float(cfg_scale)
        self.last_prediction: torch.Tensor | None = None  # the cond-only x0 of the latest call

    def _both(self, x_in: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(cond output, uncond output or None at scale 1) for model input ``x_in`` at ``t``."""
        c = self.cond
        if self.cfg_scale == 1.0:
            return self.model(x_in, t, c.cond, c.pooled, c.time_ids), None
        batch = x_in.shape[0]
        pooled = None if c.pooled is None else torch.cat([c.pooled, c.uncond_pooled])
        time_ids = None if c.time_ids is None else torch.cat([c.time_ids, c.time_ids])
        out = self.model(
            torch.cat([x_in, x_in]), torch.cat([t, t]), torch.cat([c.cond, c.uncond]), pooled, time_ids
        )
        return out[:batch], out[batch:]

    def _combine(self, cond: torch.Tensor, uncond: torch.Tensor | None) -> torch.Tensor:
        if uncond is None:
            return cond
        return uncond + (cond - uncond) * self.cfg_scale


class KarrasDenoiser(_Guided):
    """k-diffusion's D(x, sigma) with CFG: CompVisDenoiser (eps) or CompVisVDenoiser (v)."""

    def __init__(self, model: UNetModel, schedule: DiscreteSchedule, cond: PassConditioning, cfg_scale: float):
        super().__init__(model, cond, cfg_scale)
        self.schedule = schedule
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(x.device, torch.float32).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        s = sigma[:, None, None, None]
        c_in = 1 / (s**2 + 1.0) ** 0.5
        t = self.schedule.sigma_to_t(sigma.cpu()).to(x.device)
        cond_out, uncond_out = self._both(x * c_in, t)

        def denoise(out: torch.Tensor) -> torch.Tensor:
            if self.model.v_prediction:
                return out * (-s * 1.0 / (s**2 + 1.0) ** 0.5) + x * (1.0 / (s**2 + 1.0))
            return x + out * -s

        cond_x0 = denoise(cond_out)
        self.last_prediction = cond_x0
        self.calls += 1
        return self._combine(cond_x0, None if uncond_out is None else denoise(uncond_out))


class TimestepEpsModel(_Guided):
    """eps(x, t) with CFG for A1111's timestep samplers (v models converted to eps)."""

    def __init__(self, model: UNetModel, alphas_cumprod: torch.Tensor, cond: PassConditioning, cfg_scale: float):
        super().__init__(model, cond, cfg_scale)
        self.alphas_cumprod = alphas_cumprod.float()

    def __call__(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        t_in = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(x.shape[0]).to(x.device)
        cond_out, uncond_out = self._both(x, t_in)
        index = t_in.long().cpu()
        a_t = self.alphas_cumprod[index].to(x.device)[:, None, None, None]

        def eps(out: torch.Tensor) -> torch.Tensor:
            if self.model.v_prediction:
                return a_t.sqrt() * out + (1 - a_t).sqrt() * x
            return out

        cond_eps = eps(cond_out)
        self.last_prediction = (x - (1 - a_t).sqrt() * cond_eps) / a_t.sqrt()
        return self._combine(cond_eps, None if uncond_out is None else eps(uncond_out))
