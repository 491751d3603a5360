"""Our sampling loop on the tiny model: every sampler runs, stochastic ones are seeded as in
A1111 (same seed -> same pixels, batch = single runs), parameters matter and reach the
infotext, and the per-step control stops sampling where asked."""

from __future__ import annotations

import numpy as np
import pytest

from inference_container.engine import generate as gen
from inference_container.engine.infotext import build_infotext, parse_infotext
from inference_container.engine.samplers import resolve_sampler, supported_samplers
from inference_container.engine.types import HiresFix
from tests.support.generation import make_request

STOCHASTIC = ["Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]


def _latent_pixels(result) -> list[np.ndarray]:
    return [np.asarray(img.image, dtype=np.int16) for img in result.images]


def _run(model, request, control=None, events=None):
    return gen.generate(model, request, (events if events is not None else []).append, control)


def _req(ref, sampler="Euler", scheduler=None, parameters=None, **overrides):
    fields = dict(steps=3, sampler=resolve_sampler(sampler, scheduler, parameters=parameters))
    fields.update(overrides)
    return make_request(ref, **fields)


@pytest.mark.parametrize("sampler", list(supported_samplers()))
def test_every_supported_sampler_makes_a_finite_image(tiny_model, tiny_ref, sampler):
    result = _run(tiny_model, _req(tiny_ref, sampler))
    pixels = _latent_pixels(result)[0]
    assert pixels.shape == (64, 64, 3) and 0 < pixels.mean() < 255
    assert not result.interrupted and result.skipped_iterations == ()


@pytest.mark.parametrize("sampler", STOCHASTIC)
def test_stochastic_samplers_are_seeded_per_image(tiny_model, tiny_ref, sampler):
    a = _latent_pixels(_run(tiny_model, _req(tiny_ref, sampler, seed=7)))
    b = _latent_pixels(_run(tiny_model, _req(tiny_ref, sampler, seed=7)))
    c = _latent_pixels(_run(tiny_model, _req(tiny_ref, sampler, seed=8)))
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    batch = _latent_pixels(_run(tiny_model, _req(tiny_ref, sampler, seed=7, batch_size=2)))
    # Image 2 of a batch is seed 8's picture alone (per-image generators and Brownian trees).
    assert np.abs(batch[0] - a[0]).max() <= 2
    assert np.abs(batch[1] - c[0]).max() <= 2


@pytest.mark.parametrize(
    ("sampler", "parameters", "key", "value"),
    [
        ("Euler a", {"eta": 0.5}, "Eta", "0.5"),
        ("DPM++ 2M SDE", {"eta": 0.3}, "Eta", "0.3"),
        ("DDIM", {"eta": 1.0}, "Eta DDIM", "1.0"),
        ("Euler", {"s_churn": 1.0}, "Sigma churn", "1.0"),
        ("DPM++ SDE", {"s_noise": 0.5}, "Sigma noise", "0.5"),
        ("Heun", {"s_churn": 1.0, "s_noise": 0.5}, "Sigma noise", "0.5"),
    ],
)
def test_sampler_parameters_change_the_image_and_reach_the_infotext(tiny_model, tiny_ref, sampler, parameters, key,
                                                                    value):
    plain = _req(tiny_ref, sampler)
    tuned = _req(tiny_ref, sampler, parameters=parameters)
    assert not np.array_equal(_latent_pixels(_run(tiny_model, plain))[0], _latent_pixels(_run(tiny_model, tuned))[0])
    text = build_infotext(tuned, index=0, seed=1234, subseed=99, prompt="p", negative_prompt="")
    assert parse_infotext(text)[key] == value
    assert key not in parse_infotext(build_infotext(plain, index=0, seed=1234, subseed=99, prompt="p",
                                                    negative_prompt=""))


def test_beta_schedule_writes_its_parameters(tiny_ref):
    text = build_infotext(_req(tiny_ref, "Euler", "beta"), index=0, seed=1, subseed=1, prompt="p", negative_prompt="")
    # "Schedule type" keeps its place in create_infotext's list; the sampler's keys come after.
    assert "Schedule type: Beta, CFG scale" in text
    assert text.endswith("Model: tiny-sd15, Beta schedule alpha: 0.6, Beta schedule beta: 0.6")


def test_ensd_changes_ancestral_noise_and_is_written(tiny_model, tiny_ref):
    plain = _req(tiny_ref, "Euler a")
    ensd = _req(tiny_ref, "Euler a", eta_noise_seed_delta=31337)
    assert not np.array_equal(_latent_pixels(_run(tiny_model, plain))[0], _latent_pixels(_run(tiny_model, ensd))[0])
    assert parse_infotext(build_infotext(ensd, index=0, seed=1, subseed=1, prompt="p", negative_prompt=""))["ENSD"] \
        == "31337"
    # Euler is deterministic: ENSD neither changes it nor is written for it.
    euler = _req(tiny_ref, "Euler", eta_noise_seed_delta=31337)
    assert np.array_equal(_latent_pixels(_run(tiny_model, euler))[0],
                          _latent_pixels(_run(tiny_model, _req(tiny_ref, "Euler")))[0])
    assert "ENSD" not in build_infotext(euler, index=0, seed=1, subseed=1, prompt="p", negative_prompt="")


# --- the per-step control ---------------------------------------------------------------------------


class ScriptedControl:
    """Answers ``action`` at the ``at``-th poll of iteration ``iteration`` (0-based), else continue."""

    def __init__(self, iteration: int, at: int, action: str) -> None:
        self.iteration, self.at, self.action = iteration, at, action
        self.polls: list[int] = []

    def poll(self, iteration: int) -> str:
        self.polls.append(iteration)
        if iteration == self.iteration and self.polls.count(iteration) == self.at + 1:
            return self.action
        return "continue"


def test_interrupt_stops_at_the_step_and_keeps_the_batch(tiny_model, tiny_ref):
    control = ScriptedControl(iteration=0, at=2, action="interrupt")
    events = []
    result = _run(tiny_model, _req(tiny_ref, steps=5, batch_size=2, n_iter=3), control, events)
    assert result.interrupted
    assert [img.seed for img in result.images] == [1234, 1235]
    assert control.polls == [0, 0, 0]  # steps 0 and 1 sampled, stopped before step 2
    assert max(e.step for e in events if e.phase == "sampling") == 2
    full = _latent_pixels(_run(tiny_model, _req(tiny_ref, steps=5, batch_size=2)))
    assert not np.array_equal(_latent_pixels(result)[0], full[0])


def test_skip_ends_one_iteration_and_goes_on(tiny_model, tiny_ref):
    control = ScriptedControl(iteration=0, at=1, action="skip")
    result = _run(tiny_model, _req(tiny_ref, steps=3, n_iter=2), control)
    assert not result.interrupted and result.skipped_iterations == (0,)
    assert [img.seed for img in result.images] == [1234, 1235]
    assert control.polls == [0, 0, 1, 1, 1]
    whole = _latent_pixels(_run(tiny_model, _req(tiny_ref, steps=3, seed=1235)))
    assert np.abs(_latent_pixels(result)[1] - whole[0]).max() <= 2


def test_interrupt_in_the_first_pass_returns_first_pass_images(tiny_model, tiny_ref):
    hires = HiresFix(128, 128, "Latent", 2, 0.5, 2.0, 0, 0, None, "", "")
    control = ScriptedControl(iteration=0, at=1, action="interrupt")
    result = _run(tiny_model, _req(tiny_ref, steps=3, hires=hires), control)
    assert result.interrupted and result.images[0].image.size == (64, 64)
    assert control.polls == [0, 0]


def test_skip_in_the_hires_pass_keeps_the_hires_size(tiny_model, tiny_ref):
    hires = HiresFix(128, 128, "Latent", 2, 0.5, 2.0, 0, 0, None, "", "")
    control = ScriptedControl(iteration=0, at=3, action="skip")  # 3 first-pass polls, then the hires pass
    result = _run(tiny_model, _req(tiny_ref, steps=3, hires=hires), control)
    assert result.skipped_iterations == (0,) and result.images[0].image.size == (128, 128)
