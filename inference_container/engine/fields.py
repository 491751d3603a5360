"""The WebUI's API fields for txt2img and img2img (A1111 v1.10.1), with defaults and JSON types.

This is the container's own copy of the request models ``StableDiffusionTxt2ImgProcessingAPI`` and
``StableDiffusionImg2ImgProcessingAPI`` build (modules/api/models.py), in their order, so a job
document keeps the WebUI's names and defaults. A test compares it with the WebUI manifest name
for name; production never reads the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

# "image" is a base64 string (or data: URL); "any" is whatever the WebUI accepts untyped (mask).
Kind = Literal["str", "int", "float", "bool", "list", "str_list", "dict", "image", "any"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    default: Any  # the JSON default; lists/dicts are copied before use
    kind: Kind


def _f(name: str, default: Any, kind: Kind) -> FieldSpec:
    return FieldSpec(name, default, kind)


# StableDiffusionProcessing's own fields, shared by both tasks, up to "comments".
_COMMON_HEAD: tuple[FieldSpec, ...] = (
    _f("prompt", "", "str"),
    _f("negative_prompt", "", "str"),
    _f("styles", None, "str_list"),
    _f("seed", -1, "int"),
    _f("subseed", -1, "int"),
    _f("subseed_strength", 0, "float"),
    _f("seed_resize_from_h", -1, "int"),
    _f("seed_resize_from_w", -1, "int"),
    _f("sampler_name", None, "str"),
    _f("scheduler", None, "str"),
    _f("batch_size", 1, "int"),
    _f("n_iter", 1, "int"),
    _f("steps", 50, "int"),
    _f("cfg_scale", 7.0, "float"),
    _f("width", 512, "int"),
    _f("height", 512, "int"),
    _f("restore_faces", None, "bool"),
    _f("tiling", None, "bool"),
    _f("do_not_save_samples", False, "bool"),
    _f("do_not_save_grid", False, "bool"),
    _f("eta", None, "float"),
)

_COMMON_SAMPLING_TAIL: tuple[FieldSpec, ...] = (
    _f("s_min_uncond", None, "float"),
    _f("s_churn", None, "float"),
    _f("s_tmax", None, "float"),
    _f("s_tmin", None, "float"),
    _f("s_noise", None, "float"),
    _f("override_settings", None, "dict"),
    _f("override_settings_restore_afterwards", True, "bool"),
    _f("refiner_checkpoint", None, "str"),
    _f("refiner_switch_at", None, "float"),
    _f("disable_extra_networks", False, "bool"),
    _f("firstpass_image", None, "image"),
    _f("comments", None, "dict"),
)

_TXT2IMG_OWN: tuple[FieldSpec, ...] = (
    _f("enable_hr", False, "bool"),
    _f("firstphase_width", 0, "int"),
    _f("firstphase_height", 0, "int"),
    _f("hr_scale", 2.0, "float"),
    _f("hr_upscaler", None, "str"),
    _f("hr_second_pass_steps", 0, "int"),
    _f("hr_resize_x", 0, "int"),
    _f("hr_resize_y", 0, "int"),
    _f("hr_checkpoint_name", None, "str"),
    _f("hr_sampler_name", None, "str"),
    _f("hr_scheduler", None, "str"),
    _f("hr_prompt", "", "str"),
    _f("hr_negative_prompt", "", "str"),
)

_IMG2IMG_OWN: tuple[FieldSpec, ...] = (
    _f("init_images", None, "list"),
    _f("resize_mode", 0, "int"),
    _f("image_cfg_scale", None, "float"),
    _f("mask", None, "any"),
    _f("mask_blur_x", 4, "int"),
    _f("mask_blur_y", 4, "int"),
    _f("mask_blur", None, "int"),
    _f("mask_round", True, "bool"),
    _f("inpainting_fill", 0, "int"),
    _f("inpaint_full_res", True, "bool"),
    _f("inpaint_full_res_padding", 0, "int"),
    _f("inpainting_mask_invert", 0, "int"),
    _f("initial_noise_multiplier", None, "float"),
    _f("latent_mask", None, "image"),
)

# The API model's extra fields (modules/api/models.py "additional_fields"), appended last.
_SCRIPT_FIELDS: tuple[FieldSpec, ...] = (
    _f("script_name", None, "str"),
    _f("script_args", [], "list"),
    _f("send_images", True, "bool"),
    _f("save_images", False, "bool"),
    _f("alwayson_scripts", {}, "dict"),
    _f("infotext", None, "str"),
)

TXT2IMG_FIELDS: tuple[FieldSpec, ...] = (
    *_COMMON_HEAD,
    _f("denoising_strength", None, "float"),
    *_COMMON_SAMPLING_TAIL,
    *_TXT2IMG_OWN,
    _f("force_task_id", None, "str"),
    _f("sampler_index", "Euler", "str"),
    *_SCRIPT_FIELDS,
)

IMG2IMG_FIELDS: tuple[FieldSpec, ...] = (
    *_COMMON_HEAD,
    # The img2img API model overrides the processing default of None with 0.75.
    _f("denoising_strength", 0.75, "float"),
    *_COMMON_SAMPLING_TAIL,
    *_IMG2IMG_OWN,
    _f("force_task_id", None, "str"),
    _f("sampler_index", "Euler", "str"),
    _f("include_init_images", False, "bool"),
    *_SCRIPT_FIELDS,
)

FIELDS_BY_TASK: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType(
    {
        "txt2img": MappingProxyType({f.name: f for f in TXT2IMG_FIELDS}),
        "img2img": MappingProxyType({f.name: f for f in IMG2IMG_FIELDS}),
    }
)


def fields_for(task: str) -> Mapping[str, FieldSpec]:
    """The task's fields by name, in the WebUI's order. Raises KeyError for an unknown task."""
    return FIELDS_BY_TASK[task]
