"""The built-in settings the stand-in declares: the ones saving, grids and infotext read."""

from __future__ import annotations

import gradio as gr

from modules.options import OptionInfo, options_section
from modules.paths_internal import default_output_dir

options_templates = {}

options_templates.update(options_section(('saving-images', "Saving images/grids", "saving"), {
    "samples_save": OptionInfo(True, "Always save all generated images"),
    "samples_format": OptionInfo('png', 'File format for images'),
    "samples_filename_pattern": OptionInfo("", "Images filename pattern"),
    "save_images_add_number": OptionInfo(True, "Add number to filename when saving"),
    "grid_save": OptionInfo(True, "Always save all generated image grids"),
    "grid_format": OptionInfo('png', 'File format for grids'),
    "grid_extended_filename": OptionInfo(False, "Add extended info (seed, prompt) to filename when saving grid"),
    "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture"),
    "n_rows": OptionInfo(-1, "Grid row count; use -1 for autodetect and 0 for it to be same as batch size",
                         gr.Slider, {"minimum": -1, "maximum": 16, "step": 1}),
    "enable_pnginfo": OptionInfo(True, "Save text information about generation parameters as chunks to png files"),
    "save_incomplete_images": OptionInfo(False, "Save incomplete images"),
}))
options_templates.update(options_section(('saving-paths', "Paths for saving", "saving"), {
    "outdir_samples": OptionInfo("", "Output directory for images; if empty, defaults to three directories below"),
    "outdir_txt2img_samples": OptionInfo(f"{default_output_dir}/txt2img-images", 'Output directory for txt2img images'),
    "outdir_img2img_samples": OptionInfo(f"{default_output_dir}/img2img-images", 'Output directory for img2img images'),
    "outdir_grids": OptionInfo("", "Output directory for grids; if empty, defaults to two directories below"),
    "outdir_txt2img_grids": OptionInfo(f"{default_output_dir}/txt2img-grids", 'Output directory for txt2img grids'),
    "outdir_img2img_grids": OptionInfo(f"{default_output_dir}/img2img-grids", 'Output directory for img2img grids'),
}))
options_templates.update(options_section(('saving-to-dirs', "Saving to a directory", "saving"), {
    "save_to_dirs": OptionInfo(True, "Save images to a subdirectory"),
    "grid_save_to_dirs": OptionInfo(True, "Save grids to a subdirectory"),
    "directories_filename_pattern": OptionInfo("[date]", "Directory name pattern"),
}))
options_templates.update(options_section(('sd', "Stable Diffusion", "sd"), {
    "sd_model_checkpoint": OptionInfo(None, "Stable Diffusion checkpoint", gr.Dropdown),
    "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip", gr.Slider, {"minimum": 1, "maximum": 12, "step": 1}),
}))
options_templates.update(options_section(('sampler-params', "Sampler parameters", "sd"), {
    "eta_noise_seed_delta": OptionInfo(0, "Eta noise seed delta", gr.Number, {"precision": 0}),
    "s_min_uncond": OptionInfo(0.0, "Negative Guidance minimum sigma"),
    "s_churn": OptionInfo(0.0, "sigma churn"),
    "s_tmin": OptionInfo(0.0, "sigma tmin"),
    "s_tmax": OptionInfo(0.0, "sigma tmax"),
    "s_noise": OptionInfo(1.0, "sigma noise"),
}))
options_templates.update(options_section(('face-restoration', "Face restoration", "postprocessing"), {
    "face_restoration": OptionInfo(False, "Restore faces", infotext='Face restoration'),
    "face_restoration_model": OptionInfo("CodeFormer", "Face restoration model"),
}))
options_templates.update(options_section(('infotext', "Infotext", "ui"), {
    "add_model_hash_to_info": OptionInfo(True, "Add model hash to infotext"),
    "add_model_name_to_info": OptionInfo(True, "Add model name to infotext"),
    "add_user_name_to_info": OptionInfo(False, "Add user name to infotext when authenticated"),
    "add_version_to_infotext": OptionInfo(True, "Add program version to infotext"),
}))
options_templates.update(options_section(('ui', "Live previews", "ui"), {
    "show_progress_every_n_steps": OptionInfo(10, "Live preview display period", gr.Slider,
                                              {"minimum": -1, "maximum": 32, "step": 1}),
    "live_previews_enable": OptionInfo(True, "Show live previews of the created image"),
    "return_grid": OptionInfo(True, "Show grid in gallery"),
    "do_not_show_images": OptionInfo(False, "Do not show any images in gallery"),
    "samples_log_stdout": OptionInfo(False, "Always print all generation info to standard output"),
}))
options_templates.update(options_section(('system', "System", "system"), {
    "tiling": OptionInfo(False, "Tiling"),
}))
