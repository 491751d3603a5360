"""Processing: the job objects (`p`), `Processed`, and `process_images` in the order the WebUI
runs it. There is no model here: the local path ends where the real one ends without a
checkpoint (A1111: FileNotFoundError from reload_model_weights; Forge: ValueError from
manage_model_and_prompt_cache)."""

from __future__ import annotations

import json
import logging  # noqa: F401
import os
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

import modules.sd_models as sd_models
import modules.shared as shared
from modules import errors, images, infotext_utils, scripts, sd_samplers  # noqa: F401
from modules._standin import FORGE
from modules.shared import cmd_opts, opts, state  # noqa: F401

if TYPE_CHECKING:  # annotations only, as the WebUI's own
    import torch

    from modules import rng, sd_samplers_common

opt_C = 4
opt_f = 8
if FORGE:
    need_global_unload = False


def get_fixed_seed(seed):
    if seed == '' or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p):
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def program_version():
    return "v1.10.1" if not FORGE else "f2.0.1v1.10.1-previous-669-gdfdcbab6"


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list[str] = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    if FORGE:
        distilled_cfg_scale: float = 3.5
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict[str, Any] = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    ddim_discretize: str = None
    s_min_uncond: float = None
    s_churn: float = None
    s_tmax: float = None
    s_tmin: float = None
    s_noise: float = None
    override_settings: dict[str, Any] = None
    override_settings_restore_afterwards: bool = True
    sampler_index: int = None
    refiner_checkpoint: str = None
    refiner_switch_at: float = None
    disable_extra_networks: bool = False
    firstpass_image: Image = None
    scripts_value: scripts.ScriptRunner = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)
    comments: dict = None
    sampler: sd_samplers_common.Sampler | None = field(default=None, init=False)
    is_using_inpainting_conditioning: bool = field(default=False, init=False)
    paste_to: tuple | None = field(default=None, init=False)
    is_hr_pass: bool = field(default=False, init=False)
    c: tuple = field(default=None, init=False)
    uc: tuple = field(default=None, init=False)
    rng: rng.ImageRNG | None = field(default=None, init=False)
    step_multiplier: int = field(default=1, init=False)
    color_corrections: list = field(default=None, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    user: str = field(default=None, init=False)
    sd_model_name: str = field(default=None, init=False)
    sd_model_hash: str = field(default=None, init=False)
    sd_vae_name: str = field(default=None, init=False)
    sd_vae_hash: str = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    cached_uc = [None, None, None] if FORGE else [None, None]
    cached_c = [None, None, None] if FORGE else [None, None]
    if FORGE:
        latents_after_sampling = []
        pixels_after_sampling = []

    def __post_init__(self):
        if self.sampler_index is not None:
            print("sampler_index argument for StableDiffusionProcessing does not do anything; use sampler_name")
        self.comments = {}
        if self.styles is None:
            self.styles = []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        self.script_args = self.script_args or []
        self.refiner_checkpoint_info = None
        if not self.seed_enable_extras:
            self.subseed = -1
            self.subseed_strength = 0
            self.seed_resize_from_h = 0
            self.seed_resize_from_w = 0
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c
        if FORGE:
            self.extra_result_images = []
            self.latents_after_sampling = []
            self.pixels_after_sampling = []
            self.modified_noise = None

    def fill_fields_from_opts(self):
        self.s_min_uncond = self.s_min_uncond if self.s_min_uncond is not None else opts.s_min_uncond
        self.s_churn = self.s_churn if self.s_churn is not None else opts.s_churn
        self.s_tmin = self.s_tmin if self.s_tmin is not None else opts.s_tmin
        self.s_tmax = (self.s_tmax if self.s_tmax is not None else opts.s_tmax) or float('inf')
        self.s_noise = self.s_noise if self.s_noise is not None else opts.s_noise

    @property
    def sd_model(self):  # noqa: F811 - a property over the field, as in the WebUI
        return shared.sd_model

    @sd_model.setter
    def sd_model(self, value):
        pass

    @property
    def scripts(self):
        return self.scripts_value

    @scripts.setter
    def scripts(self, value):
        self.scripts_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    @property
    def script_args(self):
        return self.script_args_value

    @script_args.setter
    def script_args(self, value):
        self.script_args_value = value
        if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
            self.setup_scripts()

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text):
        self.comments[text] = 1

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self):
        self.sampler = None
        self.c = None
        self.uc = None

    def get_token_merging_ratio(self, for_hr=False):
        return 0

    def setup_prompts(self):
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]
        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)
        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(f"Received a different number of prompts ({len(self.all_prompts)}) and negative "
                               f"prompts ({len(self.all_negative_prompts)})")
        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                     for x in self.all_negative_prompts]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    if FORGE:
        def clear_prompt_cache(self):
            self.cached_c = [None, None, None]
            self.cached_uc = [None, None, None]

    def save_samples(self) -> bool:
        return opts.samples_save and not self.do_not_save_samples and (
            opts.save_incomplete_images or not state.interrupted and not state.skipped)


class Processed:
    if FORGE:
        def __init__(self, p: StableDiffusionProcessing, images_list, seed=-1, info="", subseed=None, all_prompts=None,
                     all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image=0,
                     infotexts=None, comments="", extra_images_list=[]):  # noqa: B006 - Forge's signature
            self.extra_images = extra_images_list
            self._fill(p, images_list, seed, info, subseed, all_prompts, all_negative_prompts, all_seeds,
                       all_subseeds, index_of_first_image, infotexts, comments)
    else:
        def __init__(self, p: StableDiffusionProcessing, images_list, seed=-1, info="", subseed=None, all_prompts=None,
                     all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image=0,
                     infotexts=None, comments=""):
            self._fill(p, images_list, seed, info, subseed, all_prompts, all_negative_prompts, all_seeds,
                       all_subseeds, index_of_first_image, infotexts, comments)

    def _fill(self, p, images_list, seed, info, subseed, all_prompts, all_negative_prompts, all_seeds, all_subseeds,
              index_of_first_image, infotexts, comments):
        self.images = images_list
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = p.subseed_strength
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.image_cfg_scale = getattr(p, 'image_cfg_scale', None)
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.restore_faces = p.restore_faces
        self.face_restoration_model = opts.face_restoration_model if p.restore_faces else None
        self.sd_model_name = p.sd_model_name
        self.sd_model_hash = p.sd_model_hash
        self.sd_vae_name = p.sd_vae_name
        self.sd_vae_hash = p.sd_vae_hash
        self.seed_resize_from_w = p.seed_resize_from_w
        self.seed_resize_from_h = p.seed_resize_from_h
        self.denoising_strength = getattr(p, 'denoising_strength', None)
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.styles = p.styles
        self.job_timestamp = state.job_timestamp
        self.clip_skip = opts.CLIP_stop_at_last_layers
        self.token_merging_ratio = p.get_token_merging_ratio()
        self.token_merging_ratio_hr = p.get_token_merging_ratio(for_hr=True)
        self.eta = p.eta
        self.ddim_discretize = p.ddim_discretize
        self.s_churn = p.s_churn
        self.s_tmin = p.s_tmin
        self.s_tmax = p.s_tmax
        self.s_noise = p.s_noise
        self.s_min_uncond = p.s_min_uncond
        self.sampler_noise_scheduler_override = p.sampler_noise_scheduler_override
        self.prompt = self.prompt if not isinstance(self.prompt, list) else self.prompt[0]
        self.negative_prompt = (self.negative_prompt if not isinstance(self.negative_prompt, list)
                                else self.negative_prompt[0])
        self.seed = int(self.seed if not isinstance(self.seed, list) else self.seed[0]) if self.seed is not None else -1
        self.subseed = (int(self.subseed if not isinstance(self.subseed, list) else self.subseed[0])
                        if self.subseed is not None else -1)
        self.is_using_inpainting_conditioning = p.is_using_inpainting_conditioning
        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)
        self.version = program_version()

    def js(self):
        obj = {
            "prompt": self.all_prompts[0],
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0],
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.subseed,
            "all_subseeds": self.all_subseeds,
            "subseed_strength": self.subseed_strength,
            "width": self.width,
            "height": self.height,
            "sampler_name": self.sampler_name,
            "cfg_scale": self.cfg_scale,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "restore_faces": self.restore_faces,
            "face_restoration_model": self.face_restoration_model,
            "sd_model_name": self.sd_model_name,
            "sd_model_hash": self.sd_model_hash,
            "sd_vae_name": self.sd_vae_name,
            "sd_vae_hash": self.sd_vae_hash,
            "seed_resize_from_w": self.seed_resize_from_w,
            "seed_resize_from_h": self.seed_resize_from_h,
            "denoising_strength": self.denoising_strength,
            "extra_generation_params": self.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "styles": self.styles,
            "job_timestamp": self.job_timestamp,
            "clip_skip": self.clip_skip,
            "is_using_inpainting_conditioning": self.is_using_inpainting_conditioning,
            "version": self.version,
        }
        return json.dumps(obj, default=lambda o: None)

    def infotext(self, p: StableDiffusionProcessing, index):
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)

    def get_token_merging_ratio(self, for_hr=False):
        return self.token_merging_ratio_hr if for_hr else self.token_merging_ratio


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size
    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts
    generation_params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": p.scheduler,
        "CFG scale": p.cfg_scale,
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash if opts.add_model_hash_to_info else None,
        "Model": p.sd_model_name if opts.add_model_name_to_info else None,
        **p.extra_generation_params,
        "Version": program_version() if opts.add_version_to_infotext else None,
    }
    text = ", ".join(k if k == v else f"{k}: {infotext_utils.quote(v)}" for k, v in generation_params.items()
                     if v is not None)
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_prompt_text}\n{text}".strip()


if FORGE:
    def manage_model_and_prompt_cache(p: StableDiffusionProcessing):
        global need_global_unload
        p.sd_model, just_reloaded = sd_models.forge_model_reload(), False
        if need_global_unload and not just_reloaded:
            need_global_unload = False
        if just_reloaded:
            p.clear_prompt_cache()


def process_images(p: StableDiffusionProcessing) -> Processed:
    if p.scripts is not None:
        p.scripts.before_process(p)

    stored_opts = {k: opts.data[k] if k in opts.data else opts.get_default(k) for k in p.override_settings.keys()
                   if k in opts.data}
    try:
        if sd_models.checkpoint_aliases.get(p.override_settings.get('sd_model_checkpoint')) is None:
            p.override_settings.pop('sd_model_checkpoint', None)
            if not FORGE:
                sd_models.reload_model_weights()
        for k, v in p.override_settings.items():
            opts.set(k, v, is_api=True, run_callbacks=False)
            if k == 'sd_model_checkpoint' and not FORGE:
                sd_models.reload_model_weights()
        if FORGE and not getattr(p, 'txt2img_upscale', False):
            manage_model_and_prompt_cache(p)
        sd_samplers.fix_p_invalid_sampler_and_scheduler(p)
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(opts, k, v)
    return res


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    """The local sampling loop; with no model loaded it fails where the real one does."""
    if isinstance(p.prompt, list):
        assert len(p.prompt) > 0
    else:
        assert p.prompt is not None
    get_fixed_seed(p.seed)
    p.sd_model_name = shared.sd_model.sd_checkpoint_info.name_for_extra  # AttributeError: no model
    raise RuntimeError("the stand-in has no local sampler")


if FORGE:
    def process_extra_images(processed: Processed):
        processed.extra_images = [img if isinstance(img, Image.Image) else Image.fromarray(img)
                                  for img in processed.extra_images]


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    denoising_strength: float = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str = None
    if FORGE:
        hr_additional_modules: list = field(default=None)
    hr_sampler_name: str = None
    hr_scheduler: str = None
    hr_prompt: str = ''
    hr_negative_prompt: str = ''
    if FORGE:
        hr_cfg: float = 1.0
    if FORGE:
        hr_distilled_cfg: float = 3.5
    force_task_id: str = None
    hr_checkpoint_info: dict = field(default=None, init=False)
    hr_upscale_to_x: int = field(default=0, init=False)
    hr_upscale_to_y: int = field(default=0, init=False)
    truncate_x: int = field(default=0, init=False)
    truncate_y: int = field(default=0, init=False)
    applied_old_hires_behavior_to: tuple = field(default=None, init=False)
    latent_scale_mode: dict = field(default=None, init=False)
    hr_c: tuple | None = field(default=None, init=False)
    hr_uc: tuple | None = field(default=None, init=False)
    all_hr_prompts: list = field(default=None, init=False)
    all_hr_negative_prompts: list = field(default=None, init=False)
    hr_prompts: list = field(default=None, init=False)
    hr_negative_prompts: list = field(default=None, init=False)
    hr_extra_network_data: list = field(default=None, init=False)

    cached_hr_uc = [None, None, None] if FORGE else [None, None]
    cached_hr_c = [None, None, None] if FORGE else [None, None]

    def __post_init__(self):
        super().__post_init__()
        if self.firstphase_width != 0 or self.firstphase_height != 0:
            self.hr_upscale_to_x = self.width
            self.hr_upscale_to_y = self.height
            self.width = self.firstphase_width
            self.height = self.firstphase_height
        self.cached_hr_uc = StableDiffusionProcessingTxt2Img.cached_hr_uc
        self.cached_hr_c = StableDiffusionProcessingTxt2Img.cached_hr_c

    def setup_prompts(self):
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == '':
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == '':
            self.hr_negative_prompt = self.negative_prompt
        if isinstance(self.hr_prompt, list):
            self.all_hr_prompts = self.hr_prompt
        else:
            self.all_hr_prompts = self.batch_size * self.n_iter * [self.hr_prompt]
        if isinstance(self.hr_negative_prompt, list):
            self.all_hr_negative_prompts = self.hr_negative_prompt
        else:
            self.all_hr_negative_prompts = self.batch_size * self.n_iter * [self.hr_negative_prompt]
        self.all_hr_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_hr_prompts]
        self.all_hr_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                        for x in self.all_hr_negative_prompts]


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Image = None
    force_task_id: str = None
    if FORGE:
        hr_distilled_cfg: float = 3.5
    image_mask: Any = field(default=None, init=False)
    nmask: torch.Tensor = field(default=None, init=False)
    image_conditioning: torch.Tensor = field(default=None, init=False)
    init_img_hash: str = field(default=None, init=False)
    mask_for_overlay: Image = field(default=None, init=False)
    init_latent: torch.Tensor = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_mask = self.mask
        self.mask = None
        self.initial_noise_multiplier = (opts.data.get("initial_noise_multiplier", 1.0)
                                         if self.initial_noise_multiplier is None else self.initial_noise_multiplier)

    @property
    def mask_blur(self):  # noqa: F811 - a property over the field, as in the WebUI
        if self.mask_blur_x == self.mask_blur_y:
            return self.mask_blur_x
        return None

    @mask_blur.setter
    def mask_blur(self, value):
        if isinstance(value, int):
            self.mask_blur_x = value
            self.mask_blur_y = value


_ = os
