"""The built-in sampler controls: in the WebUI they are a script whose setup() fills p."""

from __future__ import annotations

import gradio as gr
from modules import scripts, sd_samplers, sd_schedulers


class ScriptSampler(scripts.ScriptBuiltinUI):
    section = "sampler"

    def title(self):
        return "Sampler"

    def ui(self, is_img2img):
        sampler_names = [x.name for x in sd_samplers.visible_samplers()]
        scheduler_names = [x.label for x in sd_schedulers.schedulers]
        sampler_name = gr.Dropdown(label='Sampling method', elem_id=f"{self.tabname}_sampling", choices=sampler_names,
                                   value=sampler_names[0])
        scheduler = gr.Dropdown(label='Schedule type', elem_id=f"{self.tabname}_scheduler", choices=scheduler_names,
                                value=scheduler_names[0])
        steps = gr.Slider(minimum=1, maximum=150, step=1, elem_id=f"{self.tabname}_steps", label="Sampling steps",
                          value=20)
        return steps, sampler_name, scheduler

    def setup(self, p, steps, sampler_name, scheduler):
        p.steps = steps
        p.sampler_name = sampler_name
        p.scheduler = scheduler
