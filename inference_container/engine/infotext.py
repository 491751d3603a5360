"""The WebUI's infotext ("parameters" text) and ``info`` object, in A1111 v1.10's exact format.

Artists paste infotexts back into the WebUI ("PNG Info", the paste button), so keys, order,
number formatting and quoting follow ``processing.create_infotext`` and ``Processed.js``:

- line 1 the prompt; line 2 ``Negative prompt: ...`` only when there is one; last line
  ``Key: value`` pairs joined by ", " in create_infotext's key order, None values dropped;
- values containing ',', ':' or a newline are JSON-quoted (``infotext_utils.quote``);
- numbers print as Python prints them: the WebUI's API models make cfg_scale, denoising and
  hr_scale floats, so ``CFG scale: 7.0`` and ``Hires upscale: 2.0``.

Decisions where the WebUI's output depends on its state rather than the request:
- ``Schedule type``: the WebUI writes the schedule's label whenever one is in effect (the
  sampler's default included, e.g. DPM++ 2M → Karras). For a sampler without a default schedule
  it writes the request's own ``scheduler`` text if one was sent ("Automatic"), else nothing.
- ``Model`` is the checkpoint name without folder or extension (the WebUI's ``name_for_extra``);
  ``VAE`` is the VAE's file name with its extension (``get_loaded_vae_name``).
- ``Denoising strength`` appears for img2img and hires fix (where ``request`` decided the
  0.7 default when none was sent).
- ``Version`` only when a version is given; ``ENSD`` when eta_noise_seed_delta is set and the
  sampler is one A1111 marks ``uses_ensd``.
- Sampler parameters as the sampler calls record them (after ``Schedule type``): ``Beta schedule
  alpha``/``beta`` whenever a k-diffusion pass uses the Beta schedule, ``Eta`` (``Eta DDIM`` for
  DDIM) when the eta in use differs from the option default, ``Sigma churn``/``tmin``/``tmax``/
  ``noise`` when set to other than their defaults for a sampler that uses them. (A1111 v1.10.1
  itself records the s_* values only when they come from its settings, not from the payload; we
  always record what was used, so the infotext reproduces the image.)
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Sequence
from typing import Any

from .embeddings import embedding_name, names_in_prompt
from .sampling.catalog import BETA_DIST_ALPHA, BETA_DIST_BETA, KDIFFUSION
from .types import GeneratedImage, GenerationRequest, SamplerSpec

AUTOMATIC = "automatic"


def quote(value: Any) -> str:
    """The WebUI's infotext_utils.quote: JSON-quote a value that would break the key list."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def model_name_for_infotext(name: str) -> str:
    """``Model:`` is the checkpoint's file name without folder and extension."""
    base = posixpath.basename(name.replace("\\", "/"))
    stem, _ = posixpath.splitext(base)
    return stem


def _schedule_type(request: GenerationRequest) -> str | None:
    if request.sampler.scheduler != AUTOMATIC:
        return request.sampler.scheduler_label
    raw = request.parameters.get("scheduler")
    return raw if isinstance(raw, str) and raw else None


def _extra_generation_params(
    request: GenerationRequest, prompt: str | None = None, negative_prompt: str | None = None
) -> dict[str, Any]:
    """What the WebUI collects in ``p.extra_generation_params``, in its insertion order.

    With ``prompt``/``negative_prompt`` given, per-image entries (hires prompts) are resolved as
    create_infotext does; without, they are None, as Processed.js serialises them.
    """
    extra: dict[str, Any] = {}
    if request.task == "img2img":
        extra["Denoising strength"] = request.denoising_strength
    hires = request.hires
    if hires is not None:
        extra["Denoising strength"] = hires.denoising_strength
        if hires.sampler is not None and hires.sampler.name != request.sampler.name:
            extra["Hires sampler"] = hires.sampler.name
        hr_prompt = hires.prompt or (prompt or "")
        hr_negative = hires.negative_prompt or (negative_prompt or "")
        extra["Hires prompt"] = hr_prompt if prompt is not None and hr_prompt != prompt else None
        extra["Hires negative prompt"] = (
            hr_negative if negative_prompt is not None and hr_negative != negative_prompt else None
        )
        extra["Hires schedule type"] = _hires_schedule_type(request)
        if hires.resize_x == 0 and hires.resize_y == 0:
            extra["Hires upscale"] = hires.scale
        else:
            extra["Hires resize"] = f"{hires.resize_x}x{hires.resize_y}"
        if hires.second_pass_steps:
            extra["Hires steps"] = hires.second_pass_steps
        if request.parameters.get("hr_upscaler") is not None:
            extra["Hires upscaler"] = hires.upscaler
    # Added when the networks activate and the prompts are encoded: after the hires keys, before
    # what the sampler records.
    for key, value in (("Lora hashes", lora_hashes(request)), ("TI hashes", ti_hashes(request))):
        if value is not None:  # A1111 sets them only when a network is in use
            extra[key] = value
    # The k-diffusion sampler records the schedule it used; the key keeps its earlier position.
    schedule = _schedule_type(request)
    if request.sampler.scheduler != AUTOMATIC:
        extra["Schedule type"] = schedule
    for spec in (request.sampler, hires.sampler if hires is not None else None):
        if spec is not None:
            for key, value in sampler_parameter_params(spec).items():
                extra.setdefault(key, value)
    return extra


_NAME_SYMBOLS = str.maketrans("", "", ":,")  # A1111 drops these from names in hash lists


def lora_hashes(request: GenerationRequest) -> str | None:
    """``name: shorthash`` per LoRA the prompt names (A1111's ``p.lora_hashes``: keyed by the name
    the tag wrote, 12 hex digits of the sha256), or None without LoRAs."""
    hashes = {use.mentioned_name.translate(_NAME_SYMBOLS): use.short_hash for use in request.loras}
    return ", ".join(f"{name}: {short}" for name, short in hashes.items()) or None


def ti_hashes(request: GenerationRequest) -> str | None:
    """``name: shorthash`` per embedding used, the prompt's first, then the negative prompt's
    (A1111 encodes the negative prompt first and puts the later list in front)."""
    by_name = {embedding_name(ref): ref.sha256[:12] for ref in request.embeddings}
    names = list(by_name)
    used = [*names_in_prompt(request.prompt, names), *names_in_prompt(request.negative_prompt, names)]
    return ", ".join(f"{name.translate(_NAME_SYMBOLS)}: {by_name[name]}" for name in used) or None


def sampler_parameter_params(spec: SamplerSpec) -> dict[str, Any]:
    """The infotext keys a pass with ``spec`` adds, in the order A1111's sampler adds them."""
    params: dict[str, Any] = {}
    if spec.kind == KDIFFUSION and spec.scheduler == "beta":
        params["Beta schedule alpha"] = BETA_DIST_ALPHA
        params["Beta schedule beta"] = BETA_DIST_BETA
    if spec.eta is not None and spec.eta != spec.eta_default:
        params["Eta DDIM" if spec.kind != KDIFFUSION else "Eta"] = spec.eta
    if spec.s_churn != 0.0:
        params["Sigma churn"] = spec.s_churn
    if spec.s_tmin != 0.0:
        params["Sigma tmin"] = spec.s_tmin
    if spec.s_tmax != 0.0:
        params["Sigma tmax"] = spec.s_tmax
    if spec.s_noise != 1.0:
        params["Sigma noise"] = spec.s_noise
    return params


def _hires_schedule_type(request: GenerationRequest) -> str | None:
    """The WebUI notes the hires pass's schedule when it differs from the first pass's."""
    hires = request.hires
    if hires is None or hires.sampler is None or hires.sampler.scheduler == AUTOMATIC:
        return None
    first = request.sampler.scheduler_label if request.sampler.scheduler != AUTOMATIC else None
    label = hires.sampler.scheduler_label
    return label if label != first else None


def generation_params(
    request: GenerationRequest,
    *,
    seed: int,
    subseed: int,
    prompt: str,
    negative_prompt: str,
    rng: str = "GPU",
    version: str | None = None,
) -> dict[str, Any]:
    """The ordered key → value map of create_infotext, None values included."""
    extra = _extra_generation_params(request, prompt, negative_prompt)
    vae = request.vae
    varied = request.subseed_strength != 0
    resized = request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": request.sampler.name,
        "Schedule type": _schedule_type(request),
        "CFG scale": request.cfg_scale,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": request.checkpoint.short_hash,
        "Model": model_name_for_infotext(request.checkpoint.name),
        "VAE hash": vae.short_hash if vae else None,
        "VAE": posixpath.basename(vae.name.replace("\\", "/")) if vae else None,
        "Variation seed": subseed if varied else None,
        "Variation seed strength": request.subseed_strength if varied else None,
        "Seed resize from": f"{request.seed_resize_from_w}x{request.seed_resize_from_h}" if resized else None,
        "Denoising strength": extra.get("Denoising strength"),
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "ENSD": request.eta_noise_seed_delta
        if request.eta_noise_seed_delta and request.sampler.uses_ensd
        else None,
        "RNG": rng if rng != "GPU" else None,
    }
    params.update(extra)  # existing keys keep their place, as with the WebUI's dict literal
    params["Version"] = version
    return params


def build_infotext(
    request: GenerationRequest,
    *,
    index: int,
    seed: int,
    subseed: int,
    prompt: str,
    negative_prompt: str,
    rng: str = "GPU",
    version: str | None = None,
) -> str:
    """The infotext of image ``index`` of the job, exactly as the WebUI writes it."""
    del index  # every per-image value is passed explicitly; kept for the WebUI's signature
    params = generation_params(
        request,
        seed=seed,
        subseed=subseed,
        prompt=prompt,
        negative_prompt=negative_prompt,
        rng=rng,
        version=version,
    )
    line = ", ".join(
        key if key == value else f"{key}: {quote(value)}"
        for key, value in params.items()
        if value is not None
    )
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


# A "Key: value" pair: the value is a JSON string or runs to the next comma.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_infotext(text: str) -> dict[str, str]:
    """Read an infotext back into ``{"Prompt", "Negative prompt", key: value}`` (values as text).

    Follows the WebUI's reader: the last line holds the parameters when it has at least three
    pairs; quoted values are unquoted.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:") :].strip()
        target.append(line)
    result: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PARAM.findall(last):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) > 1:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        result[key.strip()] = value
    return result


def build_info(
    request: GenerationRequest,
    images: Sequence[GeneratedImage],
    infotexts: Sequence[str],
    *,
    version: str | None = None,
    job_timestamp: str | None = None,
) -> dict[str, Any]:
    """The WebUI API's ``info`` object (Processed.js) for a finished job."""
    all_prompts = [img.prompt for img in images]
    all_negative = [img.negative_prompt for img in images]
    all_seeds = [img.seed for img in images]
    all_subseeds = [img.subseed for img in images]
    vae = request.vae
    extra = _extra_generation_params(request)
    return {
        "prompt": all_prompts[0] if all_prompts else request.prompt,
        "all_prompts": all_prompts,
        "negative_prompt": all_negative[0] if all_negative else request.negative_prompt,
        "all_negative_prompts": all_negative,
        "seed": all_seeds[0] if all_seeds else request.seed,
        "all_seeds": all_seeds,
        "subseed": all_subseeds[0] if all_subseeds else request.subseed,
        "all_subseeds": all_subseeds,
        "subseed_strength": request.subseed_strength,
        "width": request.width,
        "height": request.height,
        "sampler_name": request.sampler.name,
        "cfg_scale": request.cfg_scale,
        "steps": request.steps,
        "batch_size": request.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": model_name_for_infotext(request.checkpoint.name),
        "sd_model_hash": request.checkpoint.short_hash,
        "sd_vae_name": posixpath.basename(vae.name.replace("\\", "/")) if vae else None,
        "sd_vae_hash": vae.short_hash if vae else None,
        "seed_resize_from_w": request.seed_resize_from_w,
        "seed_resize_from_h": request.seed_resize_from_h,
        "denoising_strength": request.denoising_strength,
        "extra_generation_params": extra,
        "index_of_first_image": 0,  # the WebUI's API asks for no grid
        "infotexts": list(infotexts),
        "styles": [],
        "job_timestamp": job_timestamp or time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": request.clip_skip,
        "is_using_inpainting_conditioning": False,
        "version": version,
    }
