"""What this engine accepts in a job's payload, as data: limits, ranges, refusals, upscalers.

These are the engine's own tables. ``tools/contract`` joins them with the WebUI's field list
(``shared/webui/a1111-v1.10.1.json``) and the sampler catalog into the generation contract, a
JSON file copied byte for byte into every deployable; the request parser, the middleware's
validator and the UI all read their copy. Change a rule here, then run ``make contract``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

MAX_SEED = 2**32 - 1  # the WebUI's seeds are 32-bit (torch.manual_seed of a numpy-drawn uint32)
MAX_CLIP_SKIP = 12  # SD 1.x's CLIP has 12 layers


@dataclass(frozen=True)
class Limits:
    """Sizes and counts one job may ask for."""

    min_side: int = 64
    max_side: int = 2048
    size_multiple: int = 8
    max_pixels: int = 2048 * 2048  # also for the hires-fix target
    max_steps: int = 150
    max_batch_size: int = 8
    max_n_iter: int = 32
    max_init_image_pixels: int = 2048 * 2048 * 4  # decompression-bomb guard
    # Decoded file size of one init image. Jobs arrive through object storage, so this is a memory
    # guard; the middleware's HTTP body limit (8 MiB) is tighter for inline images.
    max_init_image_bytes: int = 32 * 1024 * 1024
    max_prompt_chars: int = 32_768
    max_problems: int = 20  # errors listed in one refusal; the rest are counted
    max_json_depth: int = 32  # nesting of the job document


LIMITS = Limits()


@dataclass(frozen=True)
class Range:
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    # Values outside [minimum, maximum] that still mean something (e.g. -1 = random seed).
    special: tuple[Any, ...] = ()
    special_meaning: str = ""


# Payload kinds the engine refines beyond the WebUI's annotations ("Image" there is a string).
KIND_OVERRIDES: Mapping[str, str] = MappingProxyType(
    {
        "init_images": "image_list",
        "firstpass_image": "image",
        "mask": "image",
        "latent_mask": "image",
    }
)

RANGES: Mapping[str, Range] = MappingProxyType(
    {
        "width": Range(LIMITS.min_side, LIMITS.max_side, LIMITS.size_multiple),
        "height": Range(LIMITS.min_side, LIMITS.max_side, LIMITS.size_multiple),
        "steps": Range(1, LIMITS.max_steps),
        "batch_size": Range(1, LIMITS.max_batch_size),
        "n_iter": Range(1, LIMITS.max_n_iter),
        "cfg_scale": Range(0, 30),
        "denoising_strength": Range(0, 1),
        "subseed_strength": Range(0, 1),
        "eta": Range(0, 1),
        "s_churn": Range(0, 100),
        "s_tmin": Range(0, 10),
        "s_tmax": Range(0, 999),
        "s_noise": Range(0, 1.1),
        "seed": Range(0, MAX_SEED, special=(-1,), special_meaning="-1 (random)"),
        "subseed": Range(0, MAX_SEED, special=(-1,), special_meaning="-1 (random)"),
        "seed_resize_from_w": Range(
            LIMITS.min_side, LIMITS.max_side, LIMITS.size_multiple, special=(-1, 0), special_meaning="-1 or 0 (off)"
        ),
        "seed_resize_from_h": Range(
            LIMITS.min_side, LIMITS.max_side, LIMITS.size_multiple, special=(-1, 0), special_meaning="-1 or 0 (off)"
        ),
        "hr_scale": Range(1, 8),
        "hr_resize_x": Range(0, LIMITS.max_side),
        "hr_resize_y": Range(0, LIMITS.max_side),
        "hr_second_pass_steps": Range(0, LIMITS.max_steps),
        "resize_mode": Range(0, 3),
    }
)


@dataclass(frozen=True)
class Refusal:
    """A WebUI field the engine cannot honour unless it holds one of ``allowed`` (null always is)."""

    allowed: tuple[Any, ...]
    reason: str
    instead: str


REFUSED: Mapping[str, Refusal] = MappingProxyType(
    {
        "styles": Refusal(
            ((),), "prompt styles are not applied in the cloud", "expand the styles into the prompt before sending"
        ),
        "restore_faces": Refusal((False,), "face restoration is not supported", "turn Restore faces off"),
        "tiling": Refusal((False,), "tiling is not supported", "turn Tiling off"),
        "script_name": Refusal(("",), "scripts are not supported", "choose no script (script_name: null)"),
        "refiner_checkpoint": Refusal(
            ("", "None", "none"), "the refiner is not supported", "turn the refiner off (refiner_checkpoint: null)"
        ),
        "hr_checkpoint_name": Refusal(
            ("", "Use same checkpoint"),
            "a separate hires-fix checkpoint is not supported",
            "use the same checkpoint for the hires pass",
        ),
        "firstpass_image": Refusal(
            ("",), "a supplied first-pass image is not supported", "let the first pass run (firstpass_image: null)"
        ),
        "mask": Refusal(("",), "inpainting (mask) is not supported", "send img2img without a mask"),
        "latent_mask": Refusal(("",), "inpainting (latent_mask) is not supported", "send img2img without a mask"),
        "infotext": Refusal(
            ("",), "applying an infotext is not supported", "send the parameters as fields"
        ),
        "firstphase_width": Refusal(
            (0,), "the legacy firstphase_width hires mode is not supported", "use hr_resize_x / hr_resize_y"
        ),
        "firstphase_height": Refusal(
            (0,), "the legacy firstphase_height hires mode is not supported", "use hr_resize_x / hr_resize_y"
        ),
        "initial_noise_multiplier": Refusal(
            (1.0,), "an initial noise multiplier other than 1.0 is not supported", "leave it at 1.0 or null"
        ),
        "s_min_uncond": Refusal(
            (0.0,), "negative guidance minimum sigma (s_min_uncond) is not supported", "leave it at 0 or null"
        ),
        "alwayson_scripts": Refusal(
            ({},), "always-on scripts do not run in the cloud", "remove every entry from alwayson_scripts"
        ),
    }
)

# Fields that only steer how the WebUI saves files or reports progress: harmless to ignore.
IGNORED: Mapping[str, str] = MappingProxyType(
    {
        "send_images": "images always come back",
        "save_images": "the cloud keeps every image with the job",
        "do_not_save_samples": "the cloud keeps every image with the job",
        "do_not_save_grid": "the cloud makes no grids",
        "override_settings_restore_afterwards": "settings never persist between jobs",
        "comments": "comments only go into the WebUI's own infotext",
        "force_task_id": "the job has its own id",
        "include_init_images": "init images are never echoed back",
        "script_args": "only read by a script, and scripts are refused",
        "refiner_switch_at": "only read with a refiner, which is refused",
        "mask_blur_x": "only read with a mask, which is refused",
        "mask_blur_y": "only read with a mask, which is refused",
        "mask_blur": "only read with a mask, which is refused",
        "mask_round": "only read with a mask, which is refused",
        "inpainting_fill": "only read with a mask, which is refused",
        "inpaint_full_res": "only read with a mask, which is refused",
        "inpaint_full_res_padding": "only read with a mask, which is refused",
        "inpainting_mask_invert": "only read with a mask, which is refused",
        "image_cfg_scale": "only instruct-pix2pix checkpoints read it",
    }
)

# override_settings keys honoured (others are refused by name).
OVERRIDE_SETTINGS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "CLIP_stop_at_last_layers": {"kind": "int", "minimum": 1, "maximum": MAX_CLIP_SKIP, "default": 1},
        # Informational: the checkpoint used is the job's models.checkpoint.
        "sd_model_checkpoint": {"kind": "str"},
        # Live previews every N sampling steps (the WebUI's option; 0 or -1: none while sampling).
        "show_progress_every_n_steps": {"kind": "int", "minimum": -1, "maximum": LIMITS.max_steps, "default": 10},
        # A1111's ENSD: the per-step noise generators are seeded with seed + ENSD.
        "eta_noise_seed_delta": {"kind": "int", "minimum": 0, "maximum": MAX_SEED, "default": 0},
        # A VAE file name, or "Automatic" / "None" (the checkpoint's own); the middleware resolves
        # it to the job's models.vae, which is what the engine loads.
        "sd_vae": {"kind": "str"},
    }
)

# Hires-fix upscalers: the WebUI's latent modes, then the PIL resamplers ("None" = plain resize).
LATENT_UPSCALERS = (
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
)
PIXEL_UPSCALERS = ("None", "Lanczos", "Nearest")
DEFAULT_HR_UPSCALER = "Latent"  # the WebUI's latent_upscale_default_mode_name
# The WebUI's API leaves denoising_strength None for txt2img; its hires slider defaults to 0.7.
DEFAULT_HR_DENOISING_STRENGTH = 0.7
# Hires sampler / scheduler values that mean "the first pass's".
HR_SAME_SAMPLER = ("", "Use same sampler")
HR_SAME_SCHEDULER = ("", "Use same scheduler")

# Extra-network tags, A1111's grammar (extra_networks.re_extra_net). LoRA tags are applied from
# the models the job carries (models.loras, resolved by the middleware at submit); "lyco" is
# A1111's alias for the same loader. Other kinds (hypernetworks) are refused.
EXTRA_NETWORK_TAG = r"<(\w+):([^>]+)>"
EXTRA_NETWORK_KINDS = ("lora", "lyco")
EXTRA_NETWORK_INSTEAD = "remove the tag (hypernetworks and other extra networks are not applied in the cloud)"
PROMPT_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
# Prompts whose LoRA tags are applied (A1111 parses extra networks out of the prompt only).
EXTRA_NETWORK_FIELDS = ("prompt",)

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")

# Progress phases a job reports, in order (the container's and the middleware's; "idle" is the
# container with no job, "starting" the middleware waiting for a GPU).
PHASES = (
    "idle",
    "queued",
    "starting",
    "loading_model",
    "sampling",
    "decoding",
    "uploading",
    "cancelling",
    "interrupted",
    "done",
    "failed",
)

# WebUI fields the engine reads and honours (every other field is in IGNORED or REFUSED; the
# contract tool fails on a WebUI field in none of the three).
USED = frozenset(
    {
        "prompt", "negative_prompt", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
        "seed_resize_from_w", "sampler_name", "sampler_index", "scheduler", "batch_size", "n_iter",
        "steps", "cfg_scale", "width", "height", "eta", "s_churn", "s_tmin", "s_tmax", "s_noise",
        "denoising_strength", "override_settings", "enable_hr", "hr_scale", "hr_upscaler",
        "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_sampler_name", "hr_scheduler",
        "hr_prompt", "hr_negative_prompt", "init_images", "resize_mode", "disable_extra_networks",
    }
)
# Fields read only with the hires fix on (their ranges are checked only then).
HIRES_ONLY = frozenset({"hr_scale", "hr_resize_x", "hr_resize_y", "hr_second_pass_steps"})
IMAGE_BACKGROUND = (255, 255, 255)  # the WebUI flattens transparent init images onto white
DEFAULT_SAMPLER = "Euler"  # the API's sampler_index default
