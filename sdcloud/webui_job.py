"""The cloud job document from the WebUI's processing object ``p``, and the Cloud choice carried
in the script args and the infotext. Pure: it reads ``p``'s attributes and imports nothing of the
WebUI (``sdcloud.webui`` hands it the values the WebUI resolved: seeds, prompts after styles,
settings)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .contract import CONTRACT, PayloadRejected, check_payload, field_spec
from .ui.generation import InvalidInput, encode_init_image, vae_override

TITLE = "SD Cloud"  # the script's title: the alwayson_scripts key and the infotext key
INFOTEXT_KEY = TITLE


class CloudRefused(ValueError):
    """The job cannot run in the cloud as set up; the message says what to change."""


@dataclass(frozen=True)
class CloudChoice:
    """The Cloud accordion's values, in the order of the script's args."""

    enabled: bool = False
    endpoint: str = ""
    checkpoint: str = ""
    vae: str = ""  # the accordion's cloud VAE ("" or "Automatic": the checkpoint's own)

    @classmethod
    def from_args(cls, args: Sequence[Any]) -> CloudChoice:
        values = list(args) + [None] * 4
        return cls(
            enabled=_truthy(values[0]),
            endpoint=str(values[1] or "").strip(),
            checkpoint=str(values[2] or "").strip(),
            vae=str(values[3] or "").strip(),
        )

    def infotext_value(self) -> str:
        return f"{self.endpoint}/{self.checkpoint}"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def quote_value(text: str) -> str:
    """An infotext value quoted as the WebUI quotes one (``infotext_utils.quote``), so it parses back."""
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def with_cloud_choice(infotext: str, endpoint: str, checkpoint: str) -> str:
    """The infotext with ``SD Cloud: <endpoint>/<checkpoint>`` added when it lacks it: pasted into
    txt2img ("Send to txt2img"), it turns Cloud on with the choice the job ran with."""
    if not infotext or f"{INFOTEXT_KEY}:" in infotext or not checkpoint:
        return infotext
    value = quote_value(CloudChoice(True, endpoint, checkpoint).infotext_value())
    return f"{infotext}, {INFOTEXT_KEY}: {value}"


def parse_infotext_value(text: str) -> tuple[str, str]:
    """(endpoint, checkpoint) from "endpoint/checkpoint" (a checkpoint may hold '/' itself)."""
    endpoint, _, checkpoint = str(text or "").partition("/")
    return endpoint.strip(), checkpoint.strip()


def batch_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> tuple[list[int], list[int]]:
    """The WebUI's rule (processing.process_images_inner) for the seeds of a batch."""
    seeds = [int(seed) + (x if subseed_strength == 0 else 0) for x in range(count)]
    subseeds = [int(subseed) + x for x in range(count)]
    return seeds, subseeds


# Fields read from p by name (the rest are built below or mean nothing to the cloud).
_BUILT = {"prompt", "negative_prompt", "styles", "seed", "subseed", "sampler_index", "override_settings",
          "init_images", "mask", "denoising_strength", "hr_prompt", "hr_negative_prompt", "restore_faces",
          "tiling", "alwayson_scripts", "script_name", "infotext"}
_HIRES_ONLY = {"hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
               "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "firstphase_width", "firstphase_height"}
_OVERRIDES = tuple(CONTRACT["override_settings"])


def with_cloud_vae(override_settings: Mapping[str, Any] | None, vae: str) -> dict[str, Any]:
    """p.override_settings with the accordion's cloud VAE as ``sd_vae`` (the pick wins over an API
    caller's override; no pick keeps theirs). The WebUI's own local VAE setting is never sent: its
    file is on this machine, not in the cloud library."""
    merged = dict(override_settings or {})
    picked = vae_override(vae)
    if picked:
        merged["sd_vae"] = picked
    return merged


def _coerce(task: str, name: str, value: Any) -> Any:
    """gradio hands numbers as floats: give int fields ints (20.0 -> 20), leave the rest."""
    spec = field_spec(task, name)
    if spec and spec.get("kind") == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_payload(
    p: Any,
    task: str,
    settings: Mapping[str, Any],
    *,
    override_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The A1111 payload for ``p`` after the WebUI's own resolution (``p.all_prompts``,
    ``p.all_seeds``, ``p.all_subseeds`` set as processing sets them). ``settings`` holds the
    WebUI options that change the image (``CLIP_stop_at_last_layers``, ``eta_noise_seed_delta``,
    ``face_restoration``, ``tiling``). Raises CloudRefused when one job cannot express it, or when
    the generation contract refuses it (every problem, in the contract's words)."""
    prompts, negatives = list(p.all_prompts), list(p.all_negative_prompts)
    seeds, subseeds = list(p.all_seeds), list(p.all_subseeds)
    if len(set(prompts)) > 1 or len(set(negatives)) > 1:
        raise CloudRefused(
            "SD Cloud runs one prompt per job: this generation has a different prompt per image "
            "(a script or a list prompt); switch Cloud off for it"
        )
    expected = batch_seeds(seeds[0], subseeds[0], p.subseed_strength, len(prompts))
    if (seeds, subseeds) != expected:
        raise CloudRefused(
            "SD Cloud gives the images of a job consecutive seeds, as the WebUI does; this generation "
            "asks for other seeds per image (a script); switch Cloud off for it"
        )
    payload: dict[str, Any] = {
        "prompt": prompts[0],
        "negative_prompt": negatives[0],
        "seed": int(seeds[0]),
        "subseed": int(subseeds[0]),
    }
    enable_hr = bool(getattr(p, "enable_hr", False))
    for spec in CONTRACT["tasks"][task]["fields"]:
        name = spec["name"]
        if name in _BUILT or spec["handling"] == "ignored":
            continue
        if name in _HIRES_ONLY and not enable_hr:
            continue
        value = getattr(p, name, None)
        if value is None or (name in ("firstphase_width", "firstphase_height") and value == 0):
            continue
        payload[name] = _coerce(task, name, value)

    restore_faces = p.restore_faces if p.restore_faces is not None else settings.get("face_restoration", False)
    tiling = p.tiling if p.tiling is not None else settings.get("tiling", False)
    payload["restore_faces"] = bool(restore_faces)
    payload["tiling"] = bool(tiling)

    if task == "img2img":
        try:
            payload["init_images"] = [encode_init_image(image) for image in (p.init_images or [])]
        except InvalidInput as exc:
            raise CloudRefused(f"SD Cloud: {exc}") from None
        payload["denoising_strength"] = p.denoising_strength
        mask = getattr(p, "image_mask", None)
        if mask is not None:
            payload["mask"] = "(inpainting mask)"  # refused by the contract, which says why
    elif enable_hr:
        payload["denoising_strength"] = p.denoising_strength
        hr_prompts = getattr(p, "all_hr_prompts", None) or []
        hr_negatives = getattr(p, "all_hr_negative_prompts", None) or []
        if hr_prompts and hr_prompts[0] != prompts[0]:
            payload["hr_prompt"] = hr_prompts[0]
        if hr_negatives and hr_negatives[0] != negatives[0]:
            payload["hr_negative_prompt"] = hr_negatives[0]

    overrides = {}
    for key in _OVERRIDES:
        spec = CONTRACT["override_settings"][key]
        if key == "sd_model_checkpoint":
            continue  # the cloud checkpoint is the job's own field
        value = (override_settings or {}).get(key, settings.get(key))
        if isinstance(value, float) and value.is_integer() and spec.get("kind") == "int":
            value = int(value)
        if value is not None and value != spec.get("default"):
            overrides[key] = value
    if overrides:
        payload["override_settings"] = overrides
    check(task, payload)
    return payload


def check(task: str, payload: dict[str, Any]) -> None:
    """The generation contract's verdict, before anything is sent: CloudRefused listing every
    problem in the contract's words (the middleware and the engine would say the same)."""
    try:
        check_payload(task, payload, decode_images=False)
    except PayloadRejected as rejected:
        problems = "; ".join(f"{p.field.removeprefix('payload.')}: {p.message}" for p in rejected.problems)
        raise CloudRefused(f"SD Cloud cannot run this generation — {problems}") from None
