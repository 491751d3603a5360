"""Validation of a job document (DESIGN §4) into a ``GenerationRequest``, before any GPU work.

Everything a job may get wrong is caught here with a message naming the field: wrong JSON types,
unknown fields, sizes and counts out of bounds, bad model references, undecodable images. WebUI
fields this engine does not implement are refused with ``UnsupportedFeature`` when set to anything
but their default (never silently ignored); fields that only steer the WebUI's own saving of files
are accepted and ignored.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest, UnsupportedFeature
from .fields import FieldSpec, fields_for
from .images import decode_image
from .samplers import requested_scheduler, resolve_sampler
from .seeds import resolve_seed
from .types import GenerationRequest, HiresFix, ModelRef, SamplerSpec


@dataclass(frozen=True)
class Limits:
    """Generation limits (brief_contracts "Generation limits"; the middleware keeps the same values)."""

    min_side: int = 64
    max_side: int = 2048
    size_multiple: int = 8
    max_pixels: int = 2048 * 2048  # also for the hires-fix target
    min_steps: int = 1
    max_steps: int = 150
    max_batch_size: int = 8
    max_n_iter: int = 32
    min_cfg_scale: float = 0.0
    max_cfg_scale: float = 30.0
    min_denoising_strength: float = 0.0
    max_denoising_strength: float = 1.0
    max_init_image_pixels: int = 2048 * 2048 * 4  # decompression-bomb guard
    # Decoded file size of one init image. Jobs arrive through object storage, so this is a
    # memory guard rather than the 8 MiB HTTP body limit of the middleware.
    max_init_image_bytes: int = 32 * 1024 * 1024


DEFAULT_LIMITS = Limits()

TASKS = ("txt2img", "img2img")
JOB_KEYS = ("id", "task", "payload", "models", "output")
MODEL_KEYS = ("checkpoint", "vae", "loras", "embeddings")
REF_KEYS = ("name", "uri", "sha256", "size")

# Hires-fix upscalers this engine implements: the WebUI's latent modes and the PIL resamplers.
SUPPORTED_HR_UPSCALERS = (
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
    "None",
    "Lanczos",
    "Nearest",
)
DEFAULT_HR_UPSCALER = "Latent"  # the WebUI's latent_upscale_default_mode_name when hr_upscaler is None
# The WebUI's API leaves denoising_strength None for txt2img; its UI slider for hires defaults
# to 0.7. Without a value the WebUI's hires pass has no strength to use, so we take the UI's.
DEFAULT_HR_DENOISING_STRENGTH = 0.7

MAX_SEED_VALUE = 2**32 - 1
MAX_CLIP_SKIP = 12

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PREFIX = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)+$")
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # the WebUI's <lora:name:1> syntax
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Fields that only steer how the WebUI saves files or reports progress: harmless to ignore.
IGNORED_FIELDS = frozenset(
    {
        "send_images",
        "save_images",
        "do_not_save_samples",
        "do_not_save_grid",
        "override_settings_restore_afterwards",
        "comments",
        "force_task_id",
        "include_init_images",
        "script_args",  # only read by the script named in script_name, which we refuse
        "disable_extra_networks",  # prompts with extra-network tags are refused anyway
        "refiner_switch_at",  # only read with refiner_checkpoint, which we refuse
        # Inpainting settings: the WebUI reads them only when a mask is sent, which we refuse.
        "mask_blur_x",
        "mask_blur_y",
        "mask_blur",
        "mask_round",
        "inpainting_fill",
        "inpaint_full_res",
        "inpaint_full_res_padding",
        "inpainting_mask_invert",
        # Only instruct-pix2pix checkpoints read it; the WebUI's UI always sends 1.5.
        "image_cfg_scale",
    }
)

# Fields this module reads and turns into the request.
HANDLED_FIELDS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "seed",
        "subseed",
        "subseed_strength",
        "seed_resize_from_h",
        "seed_resize_from_w",
        "sampler_name",
        "sampler_index",
        "scheduler",
        "batch_size",
        "n_iter",
        "steps",
        "cfg_scale",
        "width",
        "height",
        "eta",
        "denoising_strength",
        "override_settings",
        "alwayson_scripts",
        "enable_hr",
        "hr_scale",
        "hr_upscaler",
        "hr_second_pass_steps",
        "hr_resize_x",
        "hr_resize_y",
        "hr_sampler_name",
        "hr_scheduler",
        "hr_prompt",
        "hr_negative_prompt",
        "init_images",
        "resize_mode",
    }
)

# Fields refused with UnsupportedFeature unless left at their default (see _unsupported_reason).
UNSUPPORTED_WHEN_SET = frozenset(
    {
        "styles",
        "restore_faces",
        "tiling",
        "script_name",
        "refiner_checkpoint",
        "hr_checkpoint_name",
        "firstpass_image",
        "mask",
        "latent_mask",
        "infotext",
        "firstphase_width",
        "firstphase_height",
        "initial_noise_multiplier",
        "s_min_uncond",
        "s_churn",
        "s_tmax",
        "s_tmin",
        "s_noise",
    }
)

# s_* sampler parameters: None means the WebUI option default, which these values equal.
_SIGMA_DEFAULTS = {"s_min_uncond": 0.0, "s_churn": 0.0, "s_tmax": 0.0, "s_tmin": 0.0, "s_noise": 1.0}


def _unsupported_reason(name: str, value: Any) -> str | None:
    """Why a set WebUI field cannot be honoured here, or None when its value is the default."""
    if name == "styles" and value:
        return "prompt styles are not supported; expand the styles into the prompt before sending"
    if name == "restore_faces" and value:
        return "face restoration is not supported"
    if name == "tiling" and value:
        return "tiling is not supported"
    if name == "script_name" and value not in (None, ""):
        return f"scripts are not supported (script_name {value!r})"
    if name == "refiner_checkpoint" and value not in (None, "", "None", "none"):
        return "the refiner is not supported"
    if name == "hr_checkpoint_name" and value not in (None, "", "Use same checkpoint"):
        return "a separate hires-fix checkpoint is not supported"
    if name == "firstpass_image" and value not in (None, ""):
        return "a supplied first-pass image is not supported"
    if name in ("mask", "latent_mask") and value not in (None, ""):
        return "inpainting (mask) is not supported"
    if name == "infotext" and value not in (None, ""):
        return "applying an infotext is not supported; send the parameters as fields"
    if name in ("firstphase_width", "firstphase_height") and value not in (None, 0):
        return "the legacy firstphase_width/height hires mode is not supported; use hr_resize_x/hr_resize_y"
    if name == "initial_noise_multiplier" and value is not None and value != 1.0:
        return "an initial noise multiplier other than 1.0 is not supported"
    if name in _SIGMA_DEFAULTS and value is not None and value != _SIGMA_DEFAULTS[name]:
        return f"the sampler parameter {name} is not supported (only the default {_SIGMA_DEFAULTS[name]})"
    return None


# --------------------------------------------------------------------------------------------
# JSON type checks


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def _as_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"must be an integer (got {_describe(value)})", field=path)
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidRequest(f"must be an integer (got {value!r})", field=path)
        return int(value)
    return value


def _as_float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"must be a number (got {_describe(value)})", field=path)
    if not math.isfinite(value):
        raise InvalidRequest(f"must be a finite number (got {value!r})", field=path)
    return float(value)


def _check_kind(spec: FieldSpec, value: Any, path: str) -> Any:
    kind = spec.kind
    if kind == "int":
        return _as_int(value, path)
    if kind == "float":
        return _as_float(value, path)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidRequest(f"must be true or false (got {_describe(value)})", field=path)
        return value
    if kind in ("str", "image"):
        if not isinstance(value, str):
            raise InvalidRequest(f"must be a string (got {_describe(value)})", field=path)
        return value
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequest(f"must be a list of strings (got {_describe(value)})", field=path)
        return list(value)
    if kind == "list":
        if not isinstance(value, list):
            raise InvalidRequest(f"must be a list (got {_describe(value)})", field=path)
        return list(value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise InvalidRequest(f"must be an object (got {_describe(value)})", field=path)
        return dict(value)
    return value  # "any"


def _copy_default(value: Any) -> Any:
    if isinstance(value, list | dict):
        return type(value)(value)
    return value


def _read_payload(task: str, payload: Any) -> dict[str, Any]:
    """Every field of the task with its checked value, or the WebUI default (also for null)."""
    if not isinstance(payload, dict):
        raise InvalidRequest(
            f"must be an object of WebUI {task} fields (got {_describe(payload)})", field="payload"
        )
    specs = fields_for(task)
    for key in payload:
        if key not in specs:
            hint = ""
            other = "img2img" if task == "txt2img" else "txt2img"
            if key in fields_for(other):
                hint = f" (it is an {other} field)"
            raise InvalidRequest(f"unknown field {key!r} for {task}{hint}", field=f"payload.{key}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        raw = payload.get(name)
        values[name] = (
            _copy_default(spec.default) if raw is None else _check_kind(spec, raw, f"payload.{name}")
        )
    return values


# --------------------------------------------------------------------------------------------
# Range checks


def _in_range(value: float, low: float, high: float, path: str, what: str = "") -> None:
    if not low <= value <= high:
        label = what or path.rsplit(".", 1)[-1]
        raise InvalidRequest(f"{label} must be between {low:g} and {high:g} (got {value:g})", field=path)


def _check_side(value: int, path: str, limits: Limits) -> None:
    name = path.rsplit(".", 1)[-1]
    if value % limits.size_multiple:
        raise InvalidRequest(
            f"{name} must be a multiple of {limits.size_multiple} (got {value})",
            field=path,
        )
    _in_range(value, limits.min_side, limits.max_side, path)


def _check_pixels(width: int, height: int, limits: Limits, path: str, what: str) -> None:
    if width * height > limits.max_pixels:
        raise InvalidRequest(
            f"{what} {width}x{height} is {width * height} pixels; the limit is {limits.max_pixels} "
            f"pixels (e.g. {limits.max_side}x{limits.max_pixels // limits.max_side})",
            field=path,
        )


def _check_seed(value: int, path: str) -> None:
    if value < -1 or value > MAX_SEED_VALUE:
        raise InvalidRequest(
            f"must be -1 (random) or between 0 and {MAX_SEED_VALUE} (got {value})", field=path
        )


# --------------------------------------------------------------------------------------------
# Job envelope: id, task, models, output


def _reject_unknown_keys(obj: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise InvalidRequest(f"unknown field {key!r}; expected one of: {', '.join(allowed)}", field=path)


def _job_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"job id is required and must be a string (got {_describe(value)})", field="id")
    if not _JOB_ID.match(value):
        raise InvalidRequest(
            "job id must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="id",
        )
    return value


def _task(value: Any) -> str:
    if value not in TASKS:
        raise InvalidRequest(
            f"unknown task {_describe(value)}; expected one of: {', '.join(TASKS)}", field="task"
        )
    return value


def _model_ref(value: Any, path: str) -> ModelRef:
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"must be a model reference object {{name, uri, sha256, size}} (got {_describe(value)})",
            field=path,
        )
    _reject_unknown_keys(value, REF_KEYS, path)
    for key in REF_KEYS:
        if key not in value:
            raise InvalidRequest(f"model reference is missing {key!r}", field=f"{path}.{key}")

    name = value["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidRequest(
            "model name must be a non-empty string of at most 255 characters", field=f"{path}.name"
        )
    if _CONTROL.search(name) or name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        raise InvalidRequest(
            "model name must be a plain file name (no control characters, absolute path or '..')",
            field=f"{path}.name",
        )

    uri = value["uri"]
    if not isinstance(uri, str):
        raise InvalidRequest(f"model uri must be a string (got {_describe(uri)})", field=f"{path}.uri")
    if uri.startswith("file://"):
        if not uri[len("file://") :].startswith("/"):
            raise InvalidRequest(
                "file:// model uri must hold an absolute path (file:///abs/path)", field=f"{path}.uri"
            )
    elif uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key:
            raise InvalidRequest("s3:// model uri must look like s3://bucket/key", field=f"{path}.uri")
    else:
        raise InvalidRequest("model uri must start with file:// or s3://", field=f"{path}.uri")
    if _CONTROL.search(uri):
        raise InvalidRequest("model uri must not contain control characters", field=f"{path}.uri")

    sha256 = value["sha256"]
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidRequest("sha256 must be 64 lowercase hexadecimal characters", field=f"{path}.sha256")

    size = value["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InvalidRequest(
            f"size must be a positive integer number of bytes (got {_describe(size)})", field=f"{path}.size"
        )
    return ModelRef(name=name, uri=uri, sha256=sha256, size=size)


def _models(value: Any) -> tuple[ModelRef, ModelRef | None]:
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"models is required: an object with a checkpoint reference (got {_describe(value)})",
            field="models",
        )
    _reject_unknown_keys(value, MODEL_KEYS, "models")
    if value.get("checkpoint") is None:
        raise InvalidRequest("a checkpoint reference is required", field="models.checkpoint")
    checkpoint = _model_ref(value["checkpoint"], "models.checkpoint")
    vae = None if value.get("vae") is None else _model_ref(value["vae"], "models.vae")
    for kind in ("loras", "embeddings"):
        listed = value.get(kind)
        if listed is None:
            continue
        if not isinstance(listed, list):
            raise InvalidRequest(
                f"must be a list of model references (got {_describe(listed)})", field=f"models.{kind}"
            )
        if listed:
            raise UnsupportedFeature(
                f"{kind} are not supported yet; send an empty list", field=f"models.{kind}"
            )
    return checkpoint, vae


def _output_prefix(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f'must be an object {{"prefix": "jobs/<id>/"}} (got {_describe(value)})', field="output"
        )
    _reject_unknown_keys(value, ("prefix",), "output")
    prefix = value.get("prefix")
    if prefix is None:
        return None
    if not isinstance(prefix, str) or len(prefix) > 512:
        raise InvalidRequest(
            "output prefix must be a string of at most 512 characters", field="output.prefix"
        )
    segments = prefix.split("/")[:-1]
    if not _PREFIX.match(prefix) or any(s in (".", "..") for s in segments):
        raise InvalidRequest(
            "output prefix must be a relative path of letters, digits, '.', '_', '-' segments ending "
            "with '/' (e.g. jobs/<id>/), without '..'",
            field="output.prefix",
        )
    return prefix


# --------------------------------------------------------------------------------------------
# Payload semantics


def _check_unsupported(values: dict[str, Any], payload: Mapping[str, Any]) -> None:
    for name in payload:
        reason = _unsupported_reason(name, values[name])
        if reason:
            raise UnsupportedFeature(reason, field=f"payload.{name}")
    scripts = values.get("alwayson_scripts") or {}
    for script in scripts:
        raise UnsupportedFeature(
            f"always-on script {script!r} is not supported; remove it from alwayson_scripts",
            field=f"payload.alwayson_scripts.{script}",
        )
    for name in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        text = values.get(name)
        match = _EXTRA_NETWORK.search(text) if isinstance(text, str) else None
        if match:
            raise UnsupportedFeature(
                f"extra networks in prompts ({match.group(0)!r}) are not supported yet; remove the tag",
                field=f"payload.{name}",
            )


def _clip_skip(overrides: dict[str, Any]) -> int:
    clip_skip = 1
    for key, value in overrides.items():
        path = f"payload.override_settings.{key}"
        if key == "CLIP_stop_at_last_layers":
            clip_skip = _as_int(value, path)
            _in_range(clip_skip, 1, MAX_CLIP_SKIP, path, "CLIP_stop_at_last_layers")
        elif key == "sd_model_checkpoint":
            # Informational: the checkpoint actually used is models.checkpoint.
            if not isinstance(value, str):
                raise InvalidRequest(f"must be a string (got {_describe(value)})", field=path)
        elif key == "eta_noise_seed_delta":
            if _as_int(value, path) != 0:
                raise UnsupportedFeature(
                    "eta_noise_seed_delta (ENSD) other than 0 is not supported", field=path
                )
        else:
            raise UnsupportedFeature(
                f"override setting {key!r} is not supported; supported: CLIP_stop_at_last_layers, "
                "sd_model_checkpoint, eta_noise_seed_delta (0)",
                field=path,
            )
    return clip_skip


def _first_pass_sampler(values: dict[str, Any], payload: Mapping[str, Any]) -> tuple[SamplerSpec, str | None]:
    """The sampler, and the schedule type the request names (inherited by the hires pass)."""
    if values["sampler_name"]:
        name, field_name = values["sampler_name"], "sampler_name"
    else:
        name, field_name = values["sampler_index"], "sampler_index"
    spec = resolve_sampler(name, values["scheduler"], sampler_field=field_name)
    return spec, requested_scheduler(name, values["scheduler"])


def hires_target(
    width: int, height: int, scale: float, resize_x: int, resize_y: int
) -> tuple[int, int, int, int]:
    """The WebUI's hires-fix sizes (processing.calculate_target_resolution).

    Returns (upscale_w, upscale_h, final_w, final_h): the first pass is upscaled to
    (upscale_w, upscale_h), then cropped to (final_w, final_h) when both resize_x and resize_y
    are given with a different aspect ratio.
    """
    if resize_x == 0 and resize_y == 0:
        w, h = int(width * scale), int(height * scale)
        return w, h, w, h
    if resize_y == 0:
        w, h = resize_x, resize_x * height // width
        return w, h, w, h
    if resize_x == 0:
        w, h = resize_y * width // height, resize_y
        return w, h, w, h
    if width / height < resize_x / resize_y:
        up_w, up_h = resize_x, resize_x * height // width
    else:
        up_w, up_h = resize_y * width // height, resize_y
    return up_w, up_h, resize_x, resize_y


def _hires(
    values: dict[str, Any], sampler: SamplerSpec, scheduler_asked: str | None, limits: Limits
) -> HiresFix | None:
    if not values["enable_hr"]:
        return None
    width, height = values["width"], values["height"]
    scale = values["hr_scale"]
    if scale <= 0:
        raise InvalidRequest(f"hr_scale must be greater than 0 (got {scale:g})", field="payload.hr_scale")
    resize_x, resize_y = values["hr_resize_x"], values["hr_resize_y"]
    for name, value in (("hr_resize_x", resize_x), ("hr_resize_y", resize_y)):
        _in_range(value, 0, limits.max_side, f"payload.{name}")
    steps = values["hr_second_pass_steps"]
    _in_range(steps, 0, limits.max_steps, "payload.hr_second_pass_steps")

    upscaler = values["hr_upscaler"]
    if upscaler is not None and upscaler not in SUPPORTED_HR_UPSCALERS:
        raise UnsupportedFeature(
            f"hires upscaler {upscaler!r} is not supported; supported: {', '.join(SUPPORTED_HR_UPSCALERS)}",
            field="payload.hr_upscaler",
        )

    up_w, up_h, final_w, final_h = hires_target(width, height, scale, resize_x, resize_y)
    source = "hr_scale" if resize_x == 0 and resize_y == 0 else "hr_resize_x"
    for side, label in ((final_w, "width"), (final_h, "height")):
        if not limits.min_side <= side <= limits.max_side:
            raise InvalidRequest(
                f"hires fix target {label} {side} must be between {limits.min_side} and {limits.max_side}",
                field=f"payload.{source}",
            )
    _check_pixels(final_w, final_h, limits, f"payload.{source}", "hires fix target")
    _check_pixels(
        up_w, up_h, limits, f"payload.{source}", "hires fix upscale (before cropping to the target)"
    )

    strength = values["denoising_strength"]
    strength = DEFAULT_HR_DENOISING_STRENGTH if strength is None else strength
    _in_range(
        strength, limits.min_denoising_strength, limits.max_denoising_strength, "payload.denoising_strength"
    )

    hr_name = values["hr_sampler_name"]
    hr_name = None if hr_name in (None, "", "Use same sampler") else hr_name
    hr_sched = values["hr_scheduler"]
    hr_sched = None if hr_sched in (None, "", "Use same scheduler") else hr_sched
    hr_sampler = None
    if hr_name is not None or hr_sched is not None:
        hr_sampler = resolve_sampler(
            hr_name or sampler.name,
            hr_sched if hr_sched is not None else scheduler_asked,
            sampler_field="hr_sampler_name",
            scheduler_field="hr_scheduler",
        )
        if hr_sampler == sampler:
            hr_sampler = None

    return HiresFix(
        target_width=final_w,
        target_height=final_h,
        upscaler=upscaler or DEFAULT_HR_UPSCALER,
        second_pass_steps=steps,
        denoising_strength=strength,
        scale=scale,
        resize_x=resize_x,
        resize_y=resize_y,
        sampler=hr_sampler,
        prompt=values["hr_prompt"],
        negative_prompt=values["hr_negative_prompt"],
    )


def parse_job(
    job: Any, *, limits: Limits = DEFAULT_LIMITS, rng: random.Random | None = None
) -> GenerationRequest:
    """Validate a job document and resolve it into a ``GenerationRequest``.

    ``rng`` draws the random seeds for ``-1`` (tests pass a seeded one). Raises InvalidRequest,
    UnsupportedFeature or PayloadTooLarge naming the field at fault.
    """
    if not isinstance(job, dict):
        raise InvalidRequest(f"the job must be a JSON object (got {_describe(job)})")
    _reject_unknown_keys(job, JOB_KEYS, "")
    job_id = _job_id(job.get("id"))
    task = _task(job.get("task"))
    if "payload" not in job:
        raise InvalidRequest(
            "payload is required (an object of WebUI fields; {} for all defaults)", field="payload"
        )
    payload = job["payload"]
    values = _read_payload(task, payload)
    _check_unsupported(values, payload)

    clip_skip = _clip_skip(values["override_settings"] or {})

    width, height = values["width"], values["height"]
    _check_side(width, "payload.width", limits)
    _check_side(height, "payload.height", limits)
    _check_pixels(width, height, limits, "payload.width", "size")
    _in_range(values["steps"], limits.min_steps, limits.max_steps, "payload.steps")
    _in_range(values["batch_size"], 1, limits.max_batch_size, "payload.batch_size")
    _in_range(values["n_iter"], 1, limits.max_n_iter, "payload.n_iter")
    _in_range(values["cfg_scale"], limits.min_cfg_scale, limits.max_cfg_scale, "payload.cfg_scale")
    _in_range(values["subseed_strength"], 0.0, 1.0, "payload.subseed_strength")
    if values["eta"] is not None:
        _in_range(values["eta"], 0.0, 1.0, "payload.eta")
    _check_seed(values["seed"], "payload.seed")
    _check_seed(values["subseed"], "payload.subseed")
    for name in ("seed_resize_from_w", "seed_resize_from_h"):
        value = values[name]
        if value > 0:
            if value % limits.size_multiple:
                raise InvalidRequest(
                    f"{name} must be a multiple of {limits.size_multiple} (got {value})",
                    field=f"payload.{name}",
                )
            _in_range(value, limits.min_side, limits.max_side, f"payload.{name}")

    sampler, scheduler_asked = _first_pass_sampler(values, payload)
    checkpoint, vae = _models(job.get("models"))
    output_prefix = _output_prefix(job.get("output"))

    batch_size = values["batch_size"]
    init_images: tuple = ()
    resize_mode = 0
    hires = None
    if task == "img2img":
        strength = values["denoising_strength"]
        _in_range(
            strength,
            limits.min_denoising_strength,
            limits.max_denoising_strength,
            "payload.denoising_strength",
        )
        resize_mode = values["resize_mode"]
        _in_range(resize_mode, 0, 3, "payload.resize_mode")
        init_images, batch_size = _init_images(values["init_images"], batch_size, limits)
    else:
        hires = _hires(values, sampler, scheduler_asked, limits)
        strength = hires.denoising_strength if hires else values["denoising_strength"]
        if strength is not None:
            _in_range(
                strength,
                limits.min_denoising_strength,
                limits.max_denoising_strength,
                "payload.denoising_strength",
            )

    # Random seeds are drawn in the WebUI's order: seed, then variation seed.
    seed = resolve_seed(values["seed"], rng)
    subseed = resolve_seed(values["subseed"], rng)

    parameters = dict(values)
    parameters["sampler_name"] = sampler.name
    parameters["sampler_index"] = None  # the WebUI's API clears it once sampler_name is set
    parameters["scheduler"] = values["scheduler"] or scheduler_asked
    if task == "img2img":
        # The WebUI's API drops input images from the echoed parameters (include_init_images).
        parameters["init_images"] = None
        parameters["mask"] = None

    return GenerationRequest(
        job_id=job_id,
        task=task,  # type: ignore[arg-type]
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"],
        width=width,
        height=height,
        steps=values["steps"],
        cfg_scale=values["cfg_scale"],
        sampler=sampler,
        seed=seed,
        subseed=subseed,
        subseed_strength=values["subseed_strength"],
        seed_resize_from_w=values["seed_resize_from_w"],
        seed_resize_from_h=values["seed_resize_from_h"],
        batch_size=batch_size,
        n_iter=values["n_iter"],
        clip_skip=clip_skip,
        eta=values["eta"],
        denoising_strength=strength,
        checkpoint=checkpoint,
        vae=vae,
        init_images=init_images,
        resize_mode=resize_mode,
        hires=hires,
        output_prefix=output_prefix,
        parameters=parameters,
    )


def _init_images(value: Any, batch_size: int, limits: Limits) -> tuple[tuple, int]:
    """Decode the init images; returns them and the batch size the WebUI would use with them.

    Like the WebUI: one image is reused for the whole batch; 2..batch_size images shrink the batch
    to their count; more than batch_size is an error.
    """
    if not value:
        raise InvalidRequest(
            "img2img needs at least one image in init_images (base64)", field="payload.init_images"
        )
    if len(value) > batch_size and len(value) > 1:
        raise InvalidRequest(
            f"got {len(value)} init images for batch_size {batch_size}; send one image, or at most batch_size images",
            field="payload.init_images",
        )
    images = tuple(
        decode_image(
            item,
            field=f"payload.init_images[{i}]",
            max_pixels=limits.max_init_image_pixels,
            max_bytes=limits.max_init_image_bytes,
        )
        for i, item in enumerate(value)
    )
    return images, (batch_size if len(images) == 1 else len(images))
