"""A job document (DESIGN §4) into a ``GenerationRequest``, before any GPU work.

Three steps, each in its own place: the envelope (id, task, model references, output prefix:
``job_document.py``); the payload against the generation contract (``inference_container/contract``,
the same rules and words the middleware refuses with at submit); then what only the engine needs,
here: the sampler resolved to this engine's implementation, the seeds drawn, the hires pass set up.
"""

from __future__ import annotations

import random
from typing import Any

from ..contract import PayloadRejected, check_payload, lora_matches, network_tags
from ..contract import hires_target as hires_target
from .contract_errors import contract_error
from .job_document import read_envelope
from .policy import OVERRIDE_SETTINGS
from .samplers import sampler_spec
from .seeds import resolve_seed
from .types import GenerationRequest, HiresFix, LoraUse, ModelRef, SamplerSpec


def parse_job(job: Any, *, rng: random.Random | None = None) -> GenerationRequest:
    """Validate a job document and resolve it into a ``GenerationRequest``.

    ``rng`` draws the random seeds for ``-1`` (tests pass a seeded one). Raises InvalidRequest,
    UnsupportedFeature or PayloadTooLarge naming the field at fault.
    """
    envelope = read_envelope(job)
    try:
        checked = check_payload(envelope.task, envelope.payload, loras=[ref.name for ref in envelope.loras])
    except PayloadRejected as rejected:
        raise contract_error(rejected.problems[0]) from None
    values = checked.values

    sampler = sampler_spec(checked.sampler.sampler, checked.sampler.scheduler, checked.sampler_params)
    hires = None
    if checked.hires is not None:
        plan = checked.hires
        hr_sampler = None
        if plan.sampler is not None:
            hr_sampler = sampler_spec(plan.sampler.sampler, plan.sampler.scheduler, checked.sampler_params)
        hires = HiresFix(
            target_width=plan.target_width,
            target_height=plan.target_height,
            upscaler=plan.upscaler,
            second_pass_steps=plan.second_pass_steps,
            denoising_strength=plan.denoising_strength,
            scale=values["hr_scale"],
            resize_x=values["hr_resize_x"],
            resize_y=values["hr_resize_y"],
            sampler=hr_sampler,
            prompt=values["hr_prompt"],
            negative_prompt=values["hr_negative_prompt"],
        )

    # Random seeds are drawn in the WebUI's order: seed, then variation seed.
    seed = resolve_seed(values["seed"], rng)
    subseed = resolve_seed(values["subseed"], rng)
    overrides = values["override_settings"] or {}
    return GenerationRequest(
        job_id=envelope.job_id,
        task=envelope.task,  # type: ignore[arg-type]
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        width=values["width"],
        height=values["height"],
        steps=values["steps"],
        cfg_scale=values["cfg_scale"],
        sampler=sampler,
        seed=seed,
        subseed=subseed,
        subseed_strength=values["subseed_strength"],
        seed_resize_from_w=values["seed_resize_from_w"],
        seed_resize_from_h=values["seed_resize_from_h"],
        batch_size=checked.batch_size,
        n_iter=values["n_iter"],
        clip_skip=checked.clip_skip,
        eta=values["eta"],
        denoising_strength=checked.denoising_strength,
        checkpoint=envelope.checkpoint,
        vae=envelope.vae,
        init_images=tuple(checked.init_images),
        resize_mode=values["resize_mode"] if envelope.task == "img2img" else 0,
        hires=hires,
        output_prefix=envelope.output_prefix,
        eta_noise_seed_delta=_override(overrides, "eta_noise_seed_delta"),
        preview_every_n_steps=_override(overrides, "show_progress_every_n_steps"),
        parameters=_echoed_parameters(envelope.task, values, sampler, checked.sampler.scheduler_asked),
        # A1111 still strips the tags with extra networks disabled; it just applies none.
        loras=() if values.get("disable_extra_networks") else _lora_uses(values["prompt"], envelope.loras),
        embeddings=envelope.embeddings,
    )


def _lora_uses(prompt: str, refs: tuple[ModelRef, ...]) -> tuple[LoraUse, ...]:
    """The prompt's LoRA tags, each with the reference it names (the contract checked they exist)."""
    uses = []
    for tag in network_tags(prompt)[0]:
        ref = next(r for r in refs if lora_matches(tag.name, r.name))
        uses.append(LoraUse(ref, tag.name, tag.te_multiplier, tag.unet_multiplier))
    return tuple(uses)


def _override(overrides: dict[str, Any], key: str) -> int:
    """An override setting's value, or the WebUI default the contract states for it."""
    value = overrides.get(key)
    return int(OVERRIDE_SETTINGS[key]["default"] if value is None else value)


def _echoed_parameters(task: str, values: dict[str, Any], sampler: SamplerSpec, asked: str | None) -> dict[str, Any]:
    """The payload as the WebUI's API echoes it in ``parameters``."""
    parameters = dict(values)
    parameters["sampler_name"] = sampler.name
    parameters["sampler_index"] = None  # the WebUI's API clears it once sampler_name is set
    parameters["scheduler"] = values["scheduler"] or asked
    if task == "img2img":
        # The WebUI's API drops input images from the echoed parameters (include_init_images).
        parameters["init_images"] = None
        parameters["mask"] = None
    return parameters
