"""Validated generation requests for engine tests, built directly (no job document)."""

from __future__ import annotations

from typing import Any

from inference_container.engine.samplers import resolve_sampler
from inference_container.engine.types import GenerationRequest, ModelRef

EULER = resolve_sampler("Euler", None)
DPMPP_2M_KARRAS = resolve_sampler("DPM++ 2M", "karras")


def make_request(checkpoint: ModelRef, **overrides: Any) -> GenerationRequest:
    """A small txt2img request (64x64, 4 Euler steps, seed 1234); ``overrides`` replace any field."""
    fields: dict[str, Any] = dict(
        job_id="job-1",
        task="txt2img",
        prompt="a photo of a cat",
        negative_prompt="blurry",
        width=64,
        height=64,
        steps=4,
        cfg_scale=7.0,
        sampler=EULER,
        seed=1234,
        subseed=99,
        subseed_strength=0.0,
        seed_resize_from_w=0,
        seed_resize_from_h=0,
        batch_size=1,
        n_iter=1,
        clip_skip=1,
        eta=None,
        denoising_strength=None,
        checkpoint=checkpoint,
    )
    fields.update(overrides)
    return GenerationRequest(**fields)
