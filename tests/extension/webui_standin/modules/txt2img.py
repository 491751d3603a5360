"""The txt2img Generate handler: UI values -> p (the built-in scripts fill steps, sampler and seed
from their args) -> scripts.run or process_images -> gallery outputs."""

from __future__ import annotations

import json  # noqa: F401
from contextlib import closing

import gradio as gr

import modules.scripts
import modules.shared as shared
from modules import processing
from modules._standin import FORGE
from modules.infotext_utils import create_override_settings_dict
from modules.shared import opts
from modules.ui_common import plaintext_to_html


def _txt2img_p(prompt, negative_prompt, prompt_styles, n_iter, batch_size, cfg_scale, height, width, enable_hr,
               denoising_strength, hr_scale, hr_upscaler, hr_second_pass_steps, hr_resize_x, hr_resize_y,
               hr_checkpoint_name, hr_sampler_name, hr_scheduler, hr_prompt, hr_negative_prompt,
               override_settings_texts, request, args, **extra):
    p = processing.StableDiffusionProcessingTxt2Img(
        outpath_samples=opts.outdir_samples or opts.outdir_txt2img_samples,
        outpath_grids=opts.outdir_grids or opts.outdir_txt2img_grids,
        prompt=prompt, styles=prompt_styles, negative_prompt=negative_prompt, batch_size=batch_size, n_iter=n_iter,
        cfg_scale=cfg_scale, width=width, height=height, enable_hr=enable_hr,
        denoising_strength=denoising_strength, hr_scale=hr_scale, hr_upscaler=hr_upscaler,
        hr_second_pass_steps=hr_second_pass_steps, hr_resize_x=hr_resize_x, hr_resize_y=hr_resize_y,
        hr_checkpoint_name=None if hr_checkpoint_name == 'Use same checkpoint' else hr_checkpoint_name,
        hr_sampler_name=None if hr_sampler_name == 'Use same sampler' else hr_sampler_name,
        hr_scheduler=None if hr_scheduler == 'Use same scheduler' else hr_scheduler,
        hr_prompt=hr_prompt, hr_negative_prompt=hr_negative_prompt,
        override_settings=create_override_settings_dict(override_settings_texts), **extra,
    )
    p.scripts = modules.scripts.scripts_txt2img
    p.script_args = args
    p.user = getattr(request, "username", None)
    return p


if FORGE:
    def txt2img_create_processing(id_task: str, request: gr.Request, prompt: str, negative_prompt: str,
                                  prompt_styles, n_iter: int, batch_size: int, cfg_scale: float,
                                  distilled_cfg_scale: float, height: int, width: int, enable_hr: bool,
                                  denoising_strength: float, hr_scale: float, hr_upscaler: str,
                                  hr_second_pass_steps: int, hr_resize_x: int, hr_resize_y: int,
                                  hr_checkpoint_name: str, hr_additional_modules: list, hr_sampler_name: str,
                                  hr_scheduler: str, hr_prompt: str, hr_negative_prompt, hr_cfg: float,
                                  hr_distilled_cfg: float, override_settings_texts, *args, force_enable_hr=False):
        return _txt2img_p(prompt, negative_prompt, prompt_styles, n_iter, batch_size, cfg_scale, height, width,
                          enable_hr or force_enable_hr, denoising_strength, hr_scale, hr_upscaler,
                          hr_second_pass_steps, hr_resize_x, hr_resize_y, hr_checkpoint_name, hr_sampler_name,
                          hr_scheduler, hr_prompt, hr_negative_prompt, override_settings_texts, request, args,
                          distilled_cfg_scale=distilled_cfg_scale, hr_additional_modules=hr_additional_modules,
                          hr_cfg=hr_cfg, hr_distilled_cfg=hr_distilled_cfg)
else:
    def txt2img_create_processing(id_task: str, request: gr.Request, prompt: str, negative_prompt: str,
                                  prompt_styles, n_iter: int, batch_size: int, cfg_scale: float, height: int,
                                  width: int, enable_hr: bool, denoising_strength: float, hr_scale: float,
                                  hr_upscaler: str, hr_second_pass_steps: int, hr_resize_x: int, hr_resize_y: int,
                                  hr_checkpoint_name: str, hr_sampler_name: str, hr_scheduler: str, hr_prompt: str,
                                  hr_negative_prompt, override_settings_texts, *args, force_enable_hr=False):
        return _txt2img_p(prompt, negative_prompt, prompt_styles, n_iter, batch_size, cfg_scale, height, width,
                          enable_hr or force_enable_hr, denoising_strength, hr_scale, hr_upscaler,
                          hr_second_pass_steps, hr_resize_x, hr_resize_y, hr_checkpoint_name, hr_sampler_name,
                          hr_scheduler, hr_prompt, hr_negative_prompt, override_settings_texts, request, args)


def _run(id_task, request, *args):
    p = txt2img_create_processing(id_task, request, *args)
    with closing(p):
        processed = modules.scripts.scripts_txt2img.run(p, *p.script_args)
        if processed is None:
            processed = processing.process_images(p)
    shared.total_tqdm.clear()
    generation_info_js = processed.js()
    if opts.do_not_show_images:
        processed.images = []
    gallery = processed.images + processed.extra_images if FORGE else processed.images
    return gallery, generation_info_js, plaintext_to_html(processed.info), plaintext_to_html(processed.comments,
                                                                                             classname="comments")


if FORGE:
    def txt2img_function(id_task: str, request: gr.Request, *args):
        return _run(id_task, request, *args)

    def txt2img(id_task: str, request: gr.Request, *args):
        # Forge runs it on its main thread and waits; the stand-in calls it in place
        return txt2img_function(id_task, request, *args)
else:
    def txt2img(id_task: str, request: gr.Request, *args):
        return _run(id_task, request, *args)
