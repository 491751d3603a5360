"""The WebUI's shared objects: options, state, styles, the command line; `sd_model` is a module
property, as in the real WebUI (reading it tries to load a model)."""

from __future__ import annotations

import os
import sys

import gradio as gr  # noqa: F401

from modules import options, shared_cmd_options, shared_state, styles
from modules.paths_internal import data_path, extensions_dir, models_path, script_path  # noqa: F401

cmd_opts = shared_cmd_options.cmd_opts
parser = shared_cmd_options.parser

batch_cond_uncond = True
parallel_processing_allowed = True
styles_filename = [os.path.join(data_path, "styles.csv")]
config_filename = cmd_opts.ui_settings_file or os.path.join(data_path, "config.json")
hide_dirs = {"visible": True}

demo = None
device = None
weight_load_location = None
xformers_available = False
hypernetworks = {}
loaded_hypernetworks = []

state = shared_state.State()
prompt_styles = styles.StyleDatabase()
interrogator = None
face_restorers = []

from modules.shared_options import options_templates  # noqa: E402

restricted_opts = set()
opts = options.Options(options_templates, restricted_opts)
settings_components = None
tab_names = []
sd_upscalers = []
clip_model = None
progress_print_out = sys.stdout
gradio_theme = None


class _TotalTqdm:
    def clear(self):
        pass

    def update(self):
        pass

    def updateTotal(self, new_total):  # noqa: N802 - the WebUI's name
        pass


total_tqdm = _TotalTqdm()
mem_mon = None

options_section = options.options_section
OptionInfo = options.OptionInfo
OptionHTML = options.OptionHTML


class _SharedModule(sys.modules[__name__].__class__):
    @property
    def sd_model(self):
        import modules.sd_models

        return modules.sd_models.model_data.get_sd_model()

    @sd_model.setter
    def sd_model(self, value):
        import modules.sd_models

        modules.sd_models.model_data.set_sd_model(value)


sys.modules[__name__].__class__ = _SharedModule
