"""Our sigmas / timesteps against references computed here from the published formulas.

The references are written independently of the production code: numpy in float64 from the
model configs' betas (betas -> alphas_cumprod -> sigmas = sqrt((1 - a) / a)), Karras et al. 2022
eq. 5 (rho 7), exponential / polyexponential (rho 1) and A1111 v1.10.1's ``sd_schedulers.py``
definitions for the rest; log-sigma interpolation for fractional timesteps as k-diffusion does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from inference_container.engine.samplers import resolve_sampler, supported_samplers
from inference_container.engine.sampling import catalog
from inference_container.engine.sampling.schedules import (
    DiscreteSchedule,
    ScheduleRequest,
    a1111_timesteps,
    alphas_cumprod_from_config,
    sigma_schedule,
)

CONFIGS = Path(__file__).resolve().parents[3] / "inference_container" / "engine" / "configs"
MODELS = {"sd15": False, "sd2": False, "sdxl": True}
STEP_COUNTS = (1, 2, 4, 10, 20, 37)
AYS = {
    False: [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    True: [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def _config(model: str) -> dict:
    return json.loads((CONFIGS / model / "scheduler" / "scheduler_config.json").read_text())


# --- the independent reference -----------------------------------------------------------------------


def ref_training_sigmas(config: dict) -> np.ndarray:
    assert config["beta_schedule"] == "scaled_linear"
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"]) ** 2
    a = np.cumprod(1 - betas)
    return np.sqrt((1 - a) / a)


def ref_t_to_sigma(train: np.ndarray, t: float) -> float:
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * math.log(train[lo]) + w * math.log(train[hi]))


def ref_sigmas(name: str, n: int, train: np.ndarray, sdxl: bool) -> list[float]:
    smin, smax = float(train[0]), float(train[-1])
    last = len(train) - 1
    if name in ("automatic", "uniform", "normal"):
        # linspace(999, 0, n) (normal: from sigma_to_t(sigma_max) = 999 to sigma_to_t(sigma_min) = 0)
        return [ref_t_to_sigma(train, t) for t in np.linspace(last, 0, n)] + [0.0]
    if name == "sgm_uniform":
        return [ref_t_to_sigma(train, t) for t in np.linspace(last, 0, n + 1)[:-1]] + [0.0]
    if name == "karras":
        rho = 7.0
        i = np.arange(n)
        ramp = i / (n - 1) if n > 1 else np.zeros(1)
        return list((smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho) + [0.0]
    if name == "exponential":
        return list(np.exp(np.linspace(math.log(smax), math.log(smin), n))) + [0.0]
    if name == "polyexponential":
        ramp = np.linspace(1, 0, n) ** 1.0
        return list(np.exp(ramp * (math.log(smax) - math.log(smin)) + math.log(smin))) + [0.0]
    if name == "simple":
        step = len(train) / n
        return [float(train[-(1 + int(x * step))]) for x in range(n)] + [0.0]
    if name == "ddim":
        step = max(len(train) // n, 1)
        return [float(train[x]) for x in range(1, len(train), step)][::-1] + [0.0]
    if name == "kl_optimal":
        i = np.arange(n + 1) / n
        return list(np.tan(i * math.atan(smin) + (1 - i) * math.atan(smax)))
    if name == "align_your_steps":
        base = AYS[sdxl]
        if n == len(base):
            return base + [0.0]
        ys = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(base)), np.log(base[::-1]))
        return list(np.exp(ys)[::-1]) + [0.0]
    if name == "beta":
        q = stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6)
        return list(smin + q * (smax - smin)) + [0.0]
    raise AssertionError(name)


def ref_sampler_sigmas(sampler: str, schedule: str, steps: int, train: np.ndarray, sdxl: bool) -> list[float]:
    entry = {s.name: s for s in catalog.SAMPLERS}[sampler]
    if schedule == "automatic" and entry.default_scheduler:
        schedule = entry.default_scheduler
    # DPM2, DPM2 a, DPM++ 3M SDE: one extra sigma, the penultimate dropped.
    discard = sampler in ("DPM2", "DPM2 a", "DPM++ 3M SDE")
    sigmas = ref_sigmas(schedule, steps + (1 if discard else 0), train, sdxl)
    return sigmas[:-2] + sigmas[-1:] if discard else sigmas


# --- the checks ----------------------------------------------------------------------------------------


def _kdiffusion_cases() -> list[tuple[str, str, str]]:
    table = supported_samplers()
    kinds = {s.name: s.kind for s in catalog.SAMPLERS}
    return [
        (model, sampler, schedule)
        for model in MODELS
        for sampler, schedules in table.items()
        if kinds[sampler] == "kdiffusion"
        for schedule in schedules
    ]


@pytest.fixture(scope="module")
def schedules() -> dict[str, DiscreteSchedule]:
    return {model: DiscreteSchedule(alphas_cumprod_from_config(_config(model))) for model in MODELS}


def test_training_sigmas_match_the_reference(schedules):
    for model in MODELS:
        np.testing.assert_allclose(schedules[model].sigmas.numpy(), ref_training_sigmas(_config(model)), rtol=1e-4)


@pytest.mark.parametrize(("model", "sampler", "schedule"), _kdiffusion_cases())
def test_kdiffusion_sigmas_match_the_reference(schedules, model, sampler, schedule):
    train = ref_training_sigmas(_config(model))
    spec = resolve_sampler(sampler, schedule)
    for steps in STEP_COUNTS:
        ours = sigma_schedule(
            ScheduleRequest(spec.scheduler, steps, spec.discard_penultimate_sigma, MODELS[model]), schedules[model]
        )
        expected = ref_sampler_sigmas(sampler, schedule, steps, train, MODELS[model])
        assert len(ours) == len(expected), (steps, len(ours), len(expected))
        np.testing.assert_allclose(ours.numpy(), np.array(expected), atol=1e-3, rtol=1e-4, err_msg=f"{steps} steps")


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_timestep_samplers_use_a1111s_grid_whatever_the_schedule(steps):
    expected = np.clip(np.arange(0, 1000, 1000 // steps) + 1, 0, 999)
    for schedule in ("automatic", "karras", "beta"):
        spec = resolve_sampler("DDIM", schedule)
        assert spec.kind == "timesteps"
        np.testing.assert_array_equal(a1111_timesteps(steps).numpy(), expected)


@pytest.mark.parametrize("steps", [4, 20])
def test_sd1_karras_spans_a1111s_range(schedules, steps):
    sigmas = sigma_schedule(ScheduleRequest("karras", steps), schedules["sd15"]).numpy()
    assert sigmas[0] == pytest.approx(14.6146, abs=1e-3)
    assert sigmas[-2] == pytest.approx(0.0292, abs=1e-4)
    assert sigmas[-1] == 0.0 and len(sigmas) == steps + 1


def test_dpm2_drops_the_penultimate_sigma(schedules):
    spec = resolve_sampler("DPM2", None)
    sigmas = sigma_schedule(ScheduleRequest(spec.scheduler, 4, spec.discard_penultimate_sigma), schedules["sd15"])
    full = sigma_schedule(ScheduleRequest("karras", 5), schedules["sd15"])
    assert len(sigmas) == 5 and sigmas[-1] == 0
    np.testing.assert_allclose(sigmas[:-1].numpy(), full[:4].numpy())


def test_sigma_to_t_inverts_t_to_sigma(schedules):
    import torch

    s = schedules["sd15"]
    t = torch.tensor([0.0, 0.5, 10.25, 500.0, 998.9, 999.0])
    np.testing.assert_allclose(s.sigma_to_t(s.t_to_sigma(t)).numpy(), t.numpy(), atol=2e-3)
