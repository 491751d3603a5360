"""One sampling pass, the way A1111's samplers run it (txt2img, img2img or the hires fix's pass).

``PassPlan`` says what to sample: the schedule, where to start (pure noise, or an init latent
noised to the pass's first sigma / timestep) and how many WebUI steps it counts. ``run_pass``
runs it and returns the latents, or, when the control says stop, A1111's ``last_latent``: the
conditional prediction of the last model call (the start latent before any).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from inference_container.engine.types import SamplerSpec

from . import kdiffusion, timesteps
from .catalog import KDIFFUSION, LCM, TIMESTEPS
from .denoiser import KarrasDenoiser, PassConditioning, TimestepEpsModel, UNetModel
from .noise_sources import BrownianNoise, ImageGenerators
from .schedules import DiscreteSchedule, ScheduleRequest, a1111_timesteps, sigma_schedule


class SamplingStopped(Exception):
    """Raised from a step's start when the control says skip or interrupt."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


@dataclass(frozen=True)
class Img2ImgStart:
    """img2img: the init latents and A1111's step split (``setup_img2img_steps``)."""

    latents: torch.Tensor
    strength: float
    fixed_steps: bool  # the hires pass: run exactly ``steps`` steps (A1111 passes steps explicitly)


def img2img_steps(steps: int, strength: float, fixed_steps: bool) -> tuple[int, int]:
    """(schedule length, t_enc) as A1111's ``setup_img2img_steps``."""
    if fixed_steps:
        total = int(steps / min(strength, 0.999)) if strength > 0 else 0
        return total, steps - 1
    return steps, int(min(strength, 0.999) * steps)


def pass_step_count(steps: int, start: Img2ImgStart | None) -> int:
    """The steps A1111 counts for a pass (its ``launch_sampling`` total)."""
    if start is None:
        return steps
    if start.fixed_steps:
        return steps if start.strength > 0 else 0
    return img2img_steps(steps, start.strength, False)[1] + 1


@dataclass
class PassResult:
    latents: torch.Tensor
    stopped: str | None  # None, "skip" or "interrupt"


@dataclass
class _Steps:
    """What a sampler algorithm talks to (see kdiffusion.Steps / timesteps.TimestepSteps)."""

    denoiser: Any
    poll: Callable[[int], str]
    # Called after each step with its index and the model's latest x0 prediction (for previews).
    on_step: Callable[[int, torch.Tensor | None], None]
    generators: ImageGenerators
    noise_sampler: BrownianNoise | None = None
    alphas_cumprod: torch.Tensor | None = None

    def model(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        return self.denoiser(x, sigma)

    def begin(self, i: int) -> None:
        action = self.poll(i)
        if action in ("skip", "interrupt"):
            raise SamplingStopped(action)

    def end(self, i: int) -> None:
        self.on_step(i, getattr(self.denoiser, "last_prediction", None))

    def randn(self, x: torch.Tensor) -> torch.Tensor:
        return self.generators.next(x)

    def brownian(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        assert self.noise_sampler is not None
        return self.noise_sampler(sigma, sigma_next)


@dataclass(frozen=True)
class PassModel:
    """The parts of a loaded model a pass needs."""

    unet: Any
    dtype: torch.dtype
    device: torch.device
    scheduler_config: dict[str, Any]
    is_sdxl: bool

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler_config.get("prediction_type", "epsilon"))


def _params(spec: SamplerSpec) -> kdiffusion.Params:
    return kdiffusion.Params(
        eta=1.0 if spec.eta is None else float(spec.eta),
        s_churn=spec.s_churn,
        s_tmin=spec.s_tmin,
        s_tmax=math.inf if not spec.s_tmax else spec.s_tmax,
        s_noise=spec.s_noise,
    )


def run_pass(
    model: PassModel,
    spec: SamplerSpec,
    *,
    steps: int,
    noise: torch.Tensor,
    generators: Sequence[torch.Generator],
    seeds: Sequence[int],
    cond: PassConditioning,
    cfg_scale: float,
    start: Img2ImgStart | None,
    poll: Callable[[int], str],
    on_step: Callable[[int, torch.Tensor | None], None],
) -> PassResult:
    from .schedules import alphas_cumprod_from_config

    device = model.device
    alphas_cumprod = alphas_cumprod_from_config(model.scheduler_config)
    unet = UNetModel(model.unet, model.dtype, model.prediction_type)
    noise = noise.to(device, torch.float32)
    gens = ImageGenerators(generators, noise.shape[1:])
    if spec.kind == KDIFFUSION:
        return _run_kdiffusion(model, spec, unet, alphas_cumprod, steps, noise, gens, seeds, cond, cfg_scale,
                               start, poll, on_step)
    if spec.kind == TIMESTEPS:
        return _run_timesteps(model, spec, unet, alphas_cumprod, steps, noise, gens, cond, cfg_scale, start,
                              poll, on_step)
    if spec.kind == LCM:
        return _run_lcm(model, unet, alphas_cumprod, steps, noise, gens, cond, cfg_scale, start, poll, on_step)
    raise ValueError(f"unknown sampler kind {spec.kind!r}")


def _run_kdiffusion(model, spec, unet, alphas_cumprod, steps, noise, gens, seeds, cond, cfg_scale, start,
                    poll, on_step) -> PassResult:
    schedule = DiscreteSchedule(alphas_cumprod)
    denoiser = KarrasDenoiser(unet, schedule, cond, cfg_scale)
    plan = ScheduleRequest(spec.scheduler, steps, spec.discard_penultimate_sigma, model.is_sdxl)
    if start is None:
        sigmas = sigma_schedule(plan, schedule)
        run_sigmas = sigmas
        x = noise * sigmas[0]
        last = x
    else:
        total, t_enc = img2img_steps(steps, start.strength, start.fixed_steps)
        sigmas = sigma_schedule(ScheduleRequest(plan.name, total, plan.discard_penultimate, plan.is_sdxl), schedule)
        run_sigmas = sigmas[total - t_enc - 1:]
        init = start.latents.to(model.device, torch.float32)
        x = init + noise * run_sigmas[0]
        last = init
    s = _Steps(denoiser, poll, on_step, gens)
    if spec.name in kdiffusion.BROWNIAN:
        positive = sigmas[sigmas > 0]
        s.noise_sampler = BrownianNoise(x, positive.min(), sigmas.max(), seeds)
    algorithm = kdiffusion.ALGORITHMS[spec.name]
    try:
        return PassResult(algorithm(s, x, run_sigmas.to(model.device), _params(spec)), None)
    except SamplingStopped as stop:
        return PassResult(denoiser.last_prediction if denoiser.last_prediction is not None else last, stop.action)


def _run_timesteps(model, spec, unet, alphas_cumprod, steps, noise, gens, cond, cfg_scale, start, poll,
                   on_step) -> PassResult:
    eps_model = TimestepEpsModel(unet, alphas_cumprod, cond, cfg_scale)
    s = _Steps(eps_model, poll, on_step, gens, alphas_cumprod=alphas_cumprod)
    if start is None:
        grid = a1111_timesteps(steps)
        run_grid = grid
        x = noise
        last = x
    else:
        total, t_enc = img2img_steps(steps, start.strength, start.fixed_steps)
        grid = a1111_timesteps(total) if total > 0 else torch.tensor([1])
        run_grid = grid[:t_enc]
        a = alphas_cumprod[grid[min(t_enc, len(grid) - 1)]]
        init = start.latents.to(model.device, torch.float32)
        x = init * a.sqrt() + noise * (1 - a).sqrt()
        last = init
    eta = 0.0 if spec.eta is None else float(spec.eta)
    try:
        if spec.name == "DDIM":
            out = timesteps.ddim(s, x, run_grid, eta) if len(run_grid) else x
        elif spec.name == "PLMS":
            out = timesteps.plms(s, x, run_grid) if len(run_grid) else x
        elif spec.name == "UniPC":
            out = _unipc(model, s, x, steps, None if start is None else (len(grid), len(run_grid)))
        else:
            raise ValueError(f"no timestep sampler {spec.name!r}")
        return PassResult(out, None)
    except SamplingStopped as stop:
        return PassResult(eps_model.last_prediction if eps_model.last_prediction is not None else last, stop.action)


def _unipc(model: PassModel, s: _Steps, x: torch.Tensor, steps: int, img2img: tuple[int, int] | None) -> torch.Tensor:
    """A1111's UniPC defaults (bh1, order 3, lower order final, x0 prediction) on diffusers' solver.

    A1111 runs its own UniPC on a continuous time-uniform grid; diffusers' solver on the
    "linspace" grid is the nearest we have (not bit-exact). For img2img, the last ``t_enc``
    steps of a ``total``-step grid.
    """
    from diffusers import UniPCMultistepScheduler

    total, keep = (steps, steps) if img2img is None else img2img
    if keep < 1:
        return x
    scheduler = UniPCMultistepScheduler.from_config(
        model.scheduler_config,
        solver_order=3,
        solver_type="bh1",
        predict_x0=True,
        lower_order_final=True,
        timestep_spacing="linspace",
        # A1111's UniPC ends at t = 1/1000, the model's smallest sigma (and diffusers' bh1 with a
        # final sigma of 0 divides by zero).
        final_sigmas_type="sigma_min",
        prediction_type="epsilon",
    )
    scheduler.set_timesteps(total, device=x.device)
    begin = len(scheduler.timesteps) - keep
    scheduler.set_begin_index(begin)
    return timesteps.scheduler_loop(s, x, scheduler, scheduler.timesteps[begin:])


def _run_lcm(model, unet, alphas_cumprod, steps, noise, gens, cond, cfg_scale, start, poll, on_step) -> PassResult:
    """LCM stays on diffusers' LCMScheduler (its own 50-step origin schedule)."""
    from diffusers import LCMScheduler

    eps_model = TimestepEpsModel(unet, alphas_cumprod, cond, cfg_scale)
    s = _Steps(eps_model, poll, on_step, gens, alphas_cumprod=alphas_cumprod)
    scheduler = LCMScheduler.from_config(model.scheduler_config, prediction_type="epsilon")
    strength = 1.0 if start is None else start.strength
    scheduler.set_timesteps(steps, device=model.device, strength=strength)
    grid = scheduler.timesteps
    if start is None:
        x, last = noise * scheduler.init_noise_sigma, noise
    else:
        init = start.latents.to(model.device, torch.float32)
        x = scheduler.add_noise(init, noise, grid[:1])
        last = init

    try:
        for i, t in enumerate(grid):
            s.begin(i)
            eps = s.model(x, float(t))
            x = scheduler.step(eps, t, x, generator=gens.generators, return_dict=False)[0]
            s.end(i)
        return PassResult(x, None)
    except SamplingStopped as stop:
        return PassResult(eps_model.last_prediction if eps_model.last_prediction is not None else last, stop.action)
