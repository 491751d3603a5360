"""The img2img Generate handler (the plain img2img tab, mode 0)."""

from __future__ import annotations

import os  # noqa: F401
from contextlib import closing

import gradio as gr

import modules.scripts
import modules.shared as shared
from modules import processing  # noqa: F401
from modules._standin import FORGE
from modules.infotext_utils import create_override_settings_dict
from modules.processing import Processed, StableDiffusionProcessingImg2Img, process_images  # noqa: F401
from modules.shared import opts
from modules.ui_common import plaintext_to_html


def _img2img(request, mode, prompt, negative_prompt, prompt_styles, init_img, mask_blur, inpainting_fill, n_iter,
             batch_size, cfg_scale, image_cfg_scale, denoising_strength, selected_scale_tab, height, width, scale_by,
             resize_mode, inpaint_full_res, inpaint_full_res_padding, inpainting_mask_invert,
             override_settings_texts, args, **extra):
    if mode != 0:
        raise NotImplementedError("the stand-in plays the plain img2img tab only")
    image = init_img
    if selected_scale_tab == 1:
        width = int(image.width * scale_by) // 8 * 8
        height = int(image.height * scale_by) // 8 * 8
    p = StableDiffusionProcessingImg2Img(
        outpath_samples=opts.outdir_samples or opts.outdir_img2img_samples,
        outpath_grids=opts.outdir_grids or opts.outdir_img2img_grids,
        prompt=prompt, negative_prompt=negative_prompt, styles=prompt_styles, batch_size=batch_size, n_iter=n_iter,
        cfg_scale=cfg_scale, width=width, height=height, init_images=[image], mask=None, mask_blur=mask_blur,
        inpainting_fill=inpainting_fill, resize_mode=resize_mode, denoising_strength=denoising_strength,
        image_cfg_scale=image_cfg_scale, inpaint_full_res=inpaint_full_res,
        inpaint_full_res_padding=inpaint_full_res_padding, inpainting_mask_invert=inpainting_mask_invert,
        override_settings=create_override_settings_dict(override_settings_texts), **extra,
    )
    p.scripts = modules.scripts.scripts_img2img
    p.script_args = args
    p.user = getattr(request, "username", None)
    with closing(p):
        processed = modules.scripts.scripts_img2img.run(p, *args)
        if processed is None:
            processed = process_images(p)
    shared.total_tqdm.clear()
    generation_info_js = processed.js()
    if opts.do_not_show_images:
        processed.images = []
    gallery = processed.images + processed.extra_images if FORGE else processed.images
    return gallery, generation_info_js, plaintext_to_html(processed.info), plaintext_to_html(processed.comments,
                                                                                             classname="comments")


if FORGE:
    def img2img_function(id_task: str, request: gr.Request, mode: int, prompt: str, negative_prompt: str,
                         prompt_styles, init_img, sketch, sketch_fg, init_img_with_mask, init_img_with_mask_fg,
                         inpaint_color_sketch, inpaint_color_sketch_fg, init_img_inpaint, init_mask_inpaint,
                         mask_blur: int, mask_alpha: float, inpainting_fill: int, n_iter: int, batch_size: int,
                         cfg_scale: float, distilled_cfg_scale: float, image_cfg_scale: float,
                         denoising_strength: float, selected_scale_tab: int, height: int, width: int, scale_by: float,
                         resize_mode: int, inpaint_full_res: bool, inpaint_full_res_padding: int,
                         inpainting_mask_invert: int, img2img_batch_input_dir: str, img2img_batch_output_dir: str,
                         img2img_batch_inpaint_mask_dir: str, override_settings_texts,
                         img2img_batch_use_png_info: bool, img2img_batch_png_info_props: list,
                         img2img_batch_png_info_dir: str, img2img_batch_source_type: str,
                         img2img_batch_upload: list, *args):
        return _img2img(request, mode, prompt, negative_prompt, prompt_styles, init_img, mask_blur, inpainting_fill,
                        n_iter, batch_size, cfg_scale, image_cfg_scale, denoising_strength, selected_scale_tab, height,
                        width, scale_by, resize_mode, inpaint_full_res, inpaint_full_res_padding,
                        inpainting_mask_invert, override_settings_texts, args,
                        distilled_cfg_scale=distilled_cfg_scale)

    def img2img(id_task: str, request: gr.Request, mode: int, prompt: str, negative_prompt: str, prompt_styles,
                init_img, sketch, sketch_fg, init_img_with_mask, init_img_with_mask_fg, inpaint_color_sketch,
                inpaint_color_sketch_fg, init_img_inpaint, init_mask_inpaint, mask_blur: int, mask_alpha: float,
                inpainting_fill: int, n_iter: int, batch_size: int, cfg_scale: float, distilled_cfg_scale: float,
                image_cfg_scale: float, denoising_strength: float, selected_scale_tab: int, height: int, width: int,
                scale_by: float, resize_mode: int, inpaint_full_res: bool, inpaint_full_res_padding: int,
                inpainting_mask_invert: int, img2img_batch_input_dir: str, img2img_batch_output_dir: str,
                img2img_batch_inpaint_mask_dir: str, override_settings_texts, img2img_batch_use_png_info: bool,
                img2img_batch_png_info_props: list, img2img_batch_png_info_dir: str, img2img_batch_source_type: str,
                img2img_batch_upload: list, *args):
        return img2img_function(id_task, request, mode, prompt, negative_prompt, prompt_styles, init_img, sketch,
                                sketch_fg, init_img_with_mask, init_img_with_mask_fg, inpaint_color_sketch,
                                inpaint_color_sketch_fg, init_img_inpaint, init_mask_inpaint, mask_blur, mask_alpha,
                                inpainting_fill, n_iter, batch_size, cfg_scale, distilled_cfg_scale, image_cfg_scale,
                                denoising_strength, selected_scale_tab, height, width, scale_by, resize_mode,
                                inpaint_full_res, inpaint_full_res_padding, inpainting_mask_invert,
                                img2img_batch_input_dir, img2img_batch_output_dir, img2img_batch_inpaint_mask_dir,
                                override_settings_texts, img2img_batch_use_png_info, img2img_batch_png_info_props,
                                img2img_batch_png_info_dir, img2img_batch_source_type, img2img_batch_upload, *args)
else:
    def img2img(id_task: str, request: gr.Request, mode: int, prompt: str, negative_prompt: str, prompt_styles,
                init_img, sketch, init_img_with_mask, inpaint_color_sketch, inpaint_color_sketch_orig,
                init_img_inpaint, init_mask_inpaint, mask_blur: int, mask_alpha: float, inpainting_fill: int,
                n_iter: int, batch_size: int, cfg_scale: float, image_cfg_scale: float, denoising_strength: float,
                selected_scale_tab: int, height: int, width: int, scale_by: float, resize_mode: int,
                inpaint_full_res: bool, inpaint_full_res_padding: int, inpainting_mask_invert: int,
                img2img_batch_input_dir: str, img2img_batch_output_dir: str, img2img_batch_inpaint_mask_dir: str,
                override_settings_texts, img2img_batch_use_png_info: bool, img2img_batch_png_info_props: list,
                img2img_batch_png_info_dir: str, img2img_batch_source_type: str, img2img_batch_upload: list, *args):
        return _img2img(request, mode, prompt, negative_prompt, prompt_styles, init_img, mask_blur, inpainting_fill,
                        n_iter, batch_size, cfg_scale, image_cfg_scale, denoising_strength, selected_scale_tab, height,
                        width, scale_by, resize_mode, inpaint_full_res, inpaint_full_res_padding,
                        inpainting_mask_invert, override_settings_texts, args)
