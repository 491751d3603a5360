"""The middleware's own copy of the generation rules: A1111 field names and defaults, limits,
and which samplers and schedulers the engine supports.

The inference container keeps its own copy (the deployables never import each other); tests
compare both with the WebUI manifest and with the contract's limits. Everything here is data
plus one pure function, ``validate_generation``, so a bad request is refused before any compute.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from middleware.domain.errors import FieldError

# --- A1111 API fields (modules/api/models.py for v1.10.1), in the WebUI's order --------------
# (name, kind, default). Kinds: str, int, float, bool, list, list[str], dict. Every A1111 field is
# Optional, but only fields whose default is None accept null here: a null width or steps would
# only fail later inside the engine.

_PROCESSING_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("prompt", "str", ""),
    ("negative_prompt", "str", ""),
    ("styles", "list[str]", None),
    ("seed", "int", -1),
    ("subseed", "int", -1),
    ("subseed_strength", "float", 0),
    ("seed_resize_from_h", "int", -1),
    ("seed_resize_from_w", "int", -1),
    ("sampler_name", "str", None),
    ("scheduler", "str", None),
    ("batch_size", "int", 1),
    ("n_iter", "int", 1),
    ("steps", "int", 50),
    ("cfg_scale", "float", 7.0),
    ("width", "int", 512),
    ("height", "int", 512),
    ("restore_faces", "bool", None),
    ("tiling", "bool", None),
    ("do_not_save_samples", "bool", False),
    ("do_not_save_grid", "bool", False),
    ("eta", "float", None),
    ("denoising_strength", "float", None),
    ("s_min_uncond", "float", None),
    ("s_churn", "float", None),
    ("s_tmax", "float", None),
    ("s_tmin", "float", None),
    ("s_noise", "float", None),
    ("override_settings", "dict", None),
    ("override_settings_restore_afterwards", "bool", True),
    ("refiner_checkpoint", "str", None),
    ("refiner_switch_at", "float", None),
    ("disable_extra_networks", "bool", False),
    ("firstpass_image", "str", None),
    ("comments", "dict", None),
)

_API_TAIL: tuple[tuple[str, str, Any], ...] = (
    ("force_task_id", "str", None),
    ("sampler_index", "str", "Euler"),
    ("script_name", "str", None),
    ("script_args", "list", []),
    ("send_images", "bool", True),
    ("save_images", "bool", False),
    ("alwayson_scripts", "dict", {}),
    ("infotext", "str", None),
)

TXT2IMG_FIELDS: tuple[tuple[str, str, Any], ...] = (
    *_PROCESSING_FIELDS,
    ("enable_hr", "bool", False),
    ("firstphase_width", "int", 0),
    ("firstphase_height", "int", 0),
    ("hr_scale", "float", 2.0),
    ("hr_upscaler", "str", None),
    ("hr_second_pass_steps", "int", 0),
    ("hr_resize_x", "int", 0),
    ("hr_resize_y", "int", 0),
    ("hr_checkpoint_name", "str", None),
    ("hr_sampler_name", "str", None),
    ("hr_scheduler", "str", None),
    ("hr_prompt", "str", ""),
    ("hr_negative_prompt", "str", ""),
    *_API_TAIL,
)


def _img2img_fields() -> tuple[tuple[str, str, Any], ...]:
    # img2img's API model overrides denoising_strength's default in place (A1111 keeps the field's
    # first position and takes the later default), then adds its own fields.
    head = tuple(
        ("denoising_strength", "float", 0.75) if name == "denoising_strength" else (name, kind, default)
        for name, kind, default in _PROCESSING_FIELDS
    )
    own = (
        ("init_images", "list[str]", None),
        ("resize_mode", "int", 0),
        ("image_cfg_scale", "float", None),
        ("mask", "str", None),
        ("mask_blur_x", "int", 4),
        ("mask_blur_y", "int", 4),
        ("mask_blur", "int", None),
        ("mask_round", "bool", True),
        ("inpainting_fill", "int", 0),
        ("inpaint_full_res", "bool", True),
        ("inpaint_full_res_padding", "int", 0),
        ("inpainting_mask_invert", "int", 0),
        ("initial_noise_multiplier", "float", None),
        ("latent_mask", "str", None),
        ("force_task_id", "str", None),
        ("sampler_index", "str", "Euler"),
        ("include_init_images", "bool", False),
    )
    tail = tuple(f for f in _API_TAIL if f[0] not in {"force_task_id", "sampler_index"})
    return (*head, *own, *tail)


IMG2IMG_FIELDS: tuple[tuple[str, str, Any], ...] = _img2img_fields()

FIELDS_BY_TASK: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "txt2img": TXT2IMG_FIELDS,
    "img2img": IMG2IMG_FIELDS,
}


def defaults(task: str) -> dict[str, Any]:
    """A fresh dict of the task's A1111 defaults (mutable defaults are copied)."""
    out: dict[str, Any] = {}
    for name, _kind, default in FIELDS_BY_TASK[task]:
        out[name] = default.copy() if isinstance(default, (list, dict)) else default
    return out


# --- Limits (the contract's "Generation limits"; the engine keeps the same values) ------------

SIZE_MULTIPLE = 8
MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PIXELS = 2048 * 2048
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_INIT_IMAGE_PIXELS = 2048 * 2048 * 4

# Inclusive numeric ranges of plain fields.
RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, 150),
    "batch_size": (1, 8),
    "n_iter": (1, 32),
    "cfg_scale": (0, 30),
    "denoising_strength": (0, 1),
    "hr_second_pass_steps": (0, 150),
}

LIMITS: dict[str, Any] = {
    "width": (MIN_SIDE, MAX_SIDE),
    "height": (MIN_SIDE, MAX_SIDE),
    "size_multiple": SIZE_MULTIPLE,
    "max_pixels": MAX_PIXELS,
    **RANGES,
    "max_body_bytes": MAX_BODY_BYTES,
    "max_init_image_pixels": MAX_INIT_IMAGE_PIXELS,
}

# --- Samplers and schedulers -----------------------------------------------------------------

# (name, label, aliases) in A1111's order. Only some of them are supported by the engine: see
# SAMPLER_SCHEDULERS.
SCHEDULERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("automatic", "Automatic", ()),
    ("uniform", "Uniform", ()),
    ("karras", "Karras", ()),
    ("exponential", "Exponential", ()),
    ("polyexponential", "Polyexponential", ()),
    ("sgm_uniform", "SGM Uniform", ("SGMUniform",)),
    ("kl_optimal", "KL Optimal", ()),
    ("align_your_steps", "Align Your Steps", ()),
    ("simple", "Simple", ()),
    ("normal", "Normal", ()),
    ("ddim", "DDIM", ()),
    ("beta", "Beta", ()),
)

# Schedules the engine can express in diffusers. Sigma-based schedulers take every spacing and
# sigma family; ancestral Euler and the timestep samplers (DDIM, PLMS, LCM) only take spacings,
# because their diffusers classes have no karras/exponential/beta sigma options.
_SPACINGS = ("automatic", "uniform", "sgm_uniform", "simple", "normal", "ddim")
_ALL_SCHEDULES = ("automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform",
                  "simple", "normal", "ddim", "beta")

# THE table of supported samplers -> the schedulers each accepts. One structure on purpose: a
# test holds it equal to the engine's own table over the WebUI manifest's full sampler list.
SAMPLER_SCHEDULERS: dict[str, tuple[str, ...]] = {
    "DPM++ 2M": _ALL_SCHEDULES,
    "DPM++ SDE": _ALL_SCHEDULES,
    "DPM++ 2M SDE": _ALL_SCHEDULES,
    "DPM++ 2M SDE Heun": _ALL_SCHEDULES,
    "DPM++ 3M SDE": _ALL_SCHEDULES,
    "Euler a": _SPACINGS,
    "Euler": _ALL_SCHEDULES,
    "LMS": _ALL_SCHEDULES,
    "Heun": _ALL_SCHEDULES,
    "DPM2": _ALL_SCHEDULES,
    "DPM2 a": _ALL_SCHEDULES,
    "DDIM": _SPACINGS,
    "PLMS": _SPACINGS,
    "UniPC": _ALL_SCHEDULES,
    "LCM": _SPACINGS,
}

# A1111's aliases for the samplers above (k-diffusion function names, old API names).
SAMPLER_ALIASES: dict[str, str] = {
    "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_sde": "DPM++ SDE",
    "k_dpmpp_2m_sde": "DPM++ 2M SDE",
    "k_dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
    "k_dpmpp_3m_sde": "DPM++ 3M SDE",
    "k_euler_a": "Euler a",
    "k_euler_ancestral": "Euler a",
    "k_euler": "Euler",
    "k_lms": "LMS",
    "k_heun": "Heun",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "ddim": "DDIM",
    "plms": "PLMS",
    "unipc": "UniPC",
    "k_lcm": "LCM",
}

# Samplers the WebUI has but the engine does not implement: refused with this list named.
UNSUPPORTED_SAMPLERS: tuple[str, ...] = ("DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++")


def _lookup_tables() -> tuple[dict[str, str], dict[str, str]]:
    samplers = {name.lower(): name for name in SAMPLER_SCHEDULERS}
    samplers.update({alias.lower(): name for alias, name in SAMPLER_ALIASES.items()})
    schedulers: dict[str, str] = {}
    for name, label, aliases in SCHEDULERS:
        for option in (name, label, *aliases):
            schedulers[option.lower()] = name
    return samplers, schedulers


_SAMPLER_BY_LOWER, _SCHEDULER_BY_LOWER = _lookup_tables()
# Suffixes of A1111's combined names ("DPM++ 2M Karras"): every scheduler label and alias.
_SCHEDULER_SUFFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        ((option.lower(), name) for name, label, aliases in SCHEDULERS for option in (label, *aliases)),
        key=lambda pair: -len(pair[0]),
    )
)


def supported_samplers() -> list[str]:
    return list(SAMPLER_SCHEDULERS)


def resolve_sampler(sampler: str, scheduler: str | None = None) -> tuple[str | None, str | None, str | None]:
    """Resolve A1111 sampler/scheduler names to canonical ones.

    Returns ``(sampler, scheduler, problem)``: canonical names, or ``problem`` saying what is
    wrong (``problem`` starts with ``scheduler:`` when the scheduler is the culprit). Combined
    names like "DPM++ 2M Karras" carry the scheduler in the name, which wins as in the WebUI.
    """
    name = sampler.strip()
    lowered = name.lower()
    canonical = _SAMPLER_BY_LOWER.get(lowered)
    suffix_scheduler: str | None = None
    if canonical is None:
        for suffix, sched in _SCHEDULER_SUFFIXES:
            if lowered.endswith(" " + suffix):
                base = _SAMPLER_BY_LOWER.get(lowered[: -len(suffix) - 1].strip())
                if base is not None:
                    canonical, suffix_scheduler = base, sched
                    break
    if canonical is None:
        if any(lowered == u.lower() for u in UNSUPPORTED_SAMPLERS):
            return (
                None,
                None,
                (
                    f"sampler {name!r} is not supported by the cloud engine; "
                    f"supported: {', '.join(SAMPLER_SCHEDULERS)}"
                ),
            )
        return None, None, f"unknown sampler {name!r}; supported: {', '.join(SAMPLER_SCHEDULERS)}"
    allowed = SAMPLER_SCHEDULERS[canonical]
    if suffix_scheduler is not None:
        resolved = suffix_scheduler
    elif scheduler is None or scheduler.strip() == "":
        resolved = "automatic"
    else:
        found = _SCHEDULER_BY_LOWER.get(scheduler.strip().lower())
        if found is None:
            known = ", ".join(name for name, _label, _aliases in SCHEDULERS)
            return canonical, None, f"scheduler:unknown scheduler {scheduler!r}; known: {known}"
        resolved = found
    if resolved not in allowed:
        return (
            canonical,
            None,
            (
                f"scheduler:scheduler {resolved!r} is not supported with sampler {canonical!r}; "
                f"supported: {', '.join(allowed)}"
            ),
        )
    return canonical, resolved, None


# --- Validation --------------------------------------------------------------------------------

_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "list[str]": "a list of strings",
    "dict": "a JSON object",
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "float":
        return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "dict":
        return isinstance(value, dict)
    raise ValueError(f"unknown field kind {kind}")


def _check_side(errors: list[FieldError], field: str, value: int) -> None:
    if value % SIZE_MULTIPLE:
        errors.append(FieldError(field, f"must be a multiple of {SIZE_MULTIPLE} (got {value})"))
    elif not MIN_SIDE <= value <= MAX_SIDE:
        errors.append(FieldError(field, f"must be between {MIN_SIDE} and {MAX_SIDE} (got {value})"))


def _hires_target(values: dict[str, Any]) -> tuple[int, int]:
    width, height = int(values["width"]), int(values["height"])
    rx, ry = int(values["hr_resize_x"] or 0), int(values["hr_resize_y"] or 0)
    if rx == 0 and ry == 0:
        scale = float(values["hr_scale"] if values["hr_scale"] is not None else 2.0)
        return int(width * scale), int(height * scale)
    if ry == 0:
        return rx, rx * height // width
    if rx == 0:
        return ry * width // height, ry
    return rx, ry


def validate_generation(task: Any, payload: Any, *, prefix: str = "payload") -> list[FieldError]:
    """Every problem with a txt2img/img2img request, each naming its field; [] when valid.

    ``payload`` uses A1111's field names; absent fields take A1111's defaults.
    """
    if task not in FIELDS_BY_TASK:
        return [FieldError("task", f"must be one of {', '.join(FIELDS_BY_TASK)} (got {task!r})")]
    if not isinstance(payload, dict):
        return [FieldError(prefix, "must be a JSON object with A1111 generation fields")]
    specs = {name: (kind, default) for name, kind, default in FIELDS_BY_TASK[task]}
    errors: list[FieldError] = []
    values = defaults(task)
    for key, value in payload.items():
        path = f"{prefix}.{key}"
        spec = specs.get(key)
        if spec is None:
            hint = difflib.get_close_matches(str(key), list(specs), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            errors.append(FieldError(path, f"unknown field for {task}{suggestion}"))
            continue
        kind, default = spec
        if value is None:
            if default is not None:
                errors.append(FieldError(path, f"must not be null; omit it to use the default {default!r}"))
            continue
        if not _type_ok(kind, value):
            errors.append(FieldError(path, f"must be {_KIND_WORDS[kind]} (got {type(value).__name__})"))
            continue
        values[key] = value

    bad = {e.field.removeprefix(prefix + ".") for e in errors}

    def ok(name: str) -> bool:
        return name not in bad and values.get(name) is not None

    for name in ("width", "height"):
        if ok(name):
            _check_side(errors, f"{prefix}.{name}", int(values[name]))
    if ok("width") and ok("height") and int(values["width"]) * int(values["height"]) > MAX_PIXELS:
        errors.append(
            FieldError(
                f"{prefix}.width",
                f"width*height must be at most {MAX_PIXELS} pixels (got {values['width']}x{values['height']})",
            )
        )
    for name, (low, high) in RANGES.items():
        if name in specs and ok(name) and not low <= values[name] <= high:
            errors.append(
                FieldError(f"{prefix}.{name}", f"must be between {low} and {high} (got {values[name]})")
            )

    _check_sampler(errors, values, bad, prefix, "sampler_name", "scheduler", fallback="sampler_index")
    if task == "txt2img":
        _check_hires(errors, values, bad, prefix)
    else:
        _check_init_images(errors, values, bad, prefix)
    return errors


def _check_sampler(
    errors: list[FieldError],
    values: dict[str, Any],
    bad: set[str],
    prefix: str,
    sampler_field: str,
    scheduler_field: str,
    fallback: str | None = None,
) -> None:
    if sampler_field in bad or scheduler_field in bad:
        return
    field = sampler_field
    sampler = values.get(sampler_field)
    if not sampler and fallback is not None and fallback not in bad:
        # A1111's API runs ``sampler_name or sampler_index``.
        field, sampler = fallback, values.get(fallback)
    if not sampler:
        if values.get(scheduler_field):
            sampler = "Euler"
        else:
            return
    _sampler, _scheduler, problem = resolve_sampler(sampler, values.get(scheduler_field))
    if problem is None:
        return
    if problem.startswith("scheduler:"):
        errors.append(FieldError(f"{prefix}.{scheduler_field}", problem.removeprefix("scheduler:")))
    else:
        errors.append(FieldError(f"{prefix}.{field}", problem))


def _check_hires(errors: list[FieldError], values: dict[str, Any], bad: set[str], prefix: str) -> None:
    if not values.get("enable_hr"):
        return
    if values.get("hr_sampler_name") or values.get("hr_scheduler"):
        hr_values = dict(values)
        if not hr_values.get("hr_sampler_name"):
            # The second pass reuses the first pass's sampler when none is named.
            hr_values["hr_sampler_name"] = (
                values.get("sampler_name") or values.get("sampler_index") or "Euler"
            )
        _check_sampler(errors, hr_values, bad, prefix, "hr_sampler_name", "hr_scheduler")
    if {"width", "height", "hr_scale", "hr_resize_x", "hr_resize_y"} & bad:
        return
    if values.get("hr_scale") is not None and values["hr_scale"] <= 0:
        errors.append(FieldError(f"{prefix}.hr_scale", f"must be greater than 0 (got {values['hr_scale']})"))
        return
    for name in ("hr_resize_x", "hr_resize_y"):
        if int(values.get(name) or 0) < 0:
            errors.append(FieldError(f"{prefix}.{name}", f"must be 0 or positive (got {values[name]})"))
            return
    if int(values["width"]) <= 0 or int(values["height"]) <= 0:
        return
    target_w, target_h = _hires_target(values)
    if target_w * target_h > MAX_PIXELS:
        field = "hr_resize_x" if values.get("hr_resize_x") or values.get("hr_resize_y") else "hr_scale"
        errors.append(
            FieldError(
                f"{prefix}.{field}",
                f"hires fix target {target_w}x{target_h} exceeds {MAX_PIXELS} pixels; lower it",
            )
        )


def _check_init_images(errors: list[FieldError], values: dict[str, Any], bad: set[str], prefix: str) -> None:
    if "init_images" in bad:
        return
    images = values.get("init_images")
    if not images:
        errors.append(FieldError(f"{prefix}.init_images", "img2img needs at least one init image"))
        return
    for i, image in enumerate(images):
        if not image:
            errors.append(FieldError(f"{prefix}.init_images[{i}]", "must be a non-empty image string"))
