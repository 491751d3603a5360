"""Start the stand-in WebUI in this process, the way the WebUI starts: extensions listed, their
scripts loaded, settings registered, the UI built (also under --nowebui, where the API builds it
and on_app_started gets demo=None), the API made. Then drive it as the browser or an API client
would: `txt2img(...)` / `img2img(...)` call the Generate handlers through the queue wrapper,
`api.text2imgapi({...})` the /sdapi/v1 handler."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from fastapi import FastAPI
from modules import call_queue, extensions, infotext_utils, script_callbacks, scripts, shared
from modules._standin import FORGE


@dataclass
class Tab:
    runner: Any
    inputs: list
    paste_fields: list = field(default_factory=list)

    def script(self, title: str):
        return self.runner.title_map[title.lower()]

    def script_args(self, overrides: dict[str, list] | None = None) -> list:
        """The script args the page sends: every control's current value, then `overrides`
        ({script title: its args}) in place of a script's own."""
        values = [0] + [getattr(c, "value", None) for c in self.inputs[1:]]
        for title, args in (overrides or {}).items():
            script = self.script(title)
            values[script.args_from:script.args_from + len(args)] = list(args)
        return values


@dataclass
class WebUI:
    demo: Any
    app: FastAPI
    api: Any
    tabs: dict[str, Tab]
    settings_components: dict[str, Any]
    ui_tabs: list
    started_with_demo: Any

    # ---- the txt2img / img2img Generate buttons -----------------------------------------------

    def txt2img(self, prompt="", negative_prompt="", styles=(), n_iter=1, batch_size=1, cfg_scale=7.0, height=512,
                width=512, enable_hr=False, denoising_strength=0.7, hr_scale=2.0, hr_upscaler="Latent",
                hr_second_pass_steps=0, hr_resize_x=0, hr_resize_y=0, override_settings_texts=(),
                script_args=None):
        head = [prompt, negative_prompt, list(styles), n_iter, batch_size, cfg_scale]
        if FORGE:
            head.append(3.5)  # distilled_cfg_scale
        head += [height, width, enable_hr, denoising_strength, hr_scale, hr_upscaler, hr_second_pass_steps,
                 hr_resize_x, hr_resize_y, "Use same checkpoint"]
        if FORGE:
            head.append([])  # hr_additional_modules
        head += ["Use same sampler", "Use same scheduler", "", ""]
        if FORGE:
            head += [1.0, 3.5]  # hr_cfg, hr_distilled_cfg
        head.append(list(override_settings_texts))
        args = script_args if script_args is not None else self.tabs["txt2img"].script_args()
        from modules import txt2img

        fn = call_queue.wrap_gradio_gpu_call(txt2img.txt2img, extra_outputs=[None, '', ''])
        return fn(f"task({uuid.uuid4().hex[:15]})", gr.Request(), *head, *args)

    def img2img(self, init_img, prompt="", negative_prompt="", styles=(), n_iter=1, batch_size=1, cfg_scale=7.0,
                denoising_strength=0.75, height=512, width=512, resize_mode=0, override_settings_texts=(),
                script_args=None):
        if FORGE:
            images = [init_img, None, None, None, None, None, None, None, None]
        else:
            images = [init_img, None, None, None, None, None, None]
        head = [0, prompt, negative_prompt, list(styles), *images, 4, 1.0, 0, n_iter, batch_size, cfg_scale]
        if FORGE:
            head.append(3.5)  # distilled_cfg_scale
        head += [1.5, denoising_strength, 0, height, width, 1.0, resize_mode, True, 32, 0, "", "", "",
                 list(override_settings_texts), False, [], "", "upload", []]
        args = script_args if script_args is not None else self.tabs["img2img"].script_args()
        from modules import img2img

        fn = call_queue.wrap_gradio_gpu_call(img2img.img2img, extra_outputs=[None, '', ''])
        return fn(f"task({uuid.uuid4().hex[:15]})", gr.Request(), *head, *args)

    def paste(self, tabname: str, infotext: str) -> list:
        """What "Send to txt2img" puts in each registered field: one update per field."""
        return infotext_utils._paste_values(self.tabs[tabname].paste_fields, infotext)


def _setting_component(key, info):
    args = info.component_args() if callable(info.component_args) else (info.component_args or {})
    component = info.component
    if component is None:
        default = info.default
        component = gr.Checkbox if isinstance(default, bool) else gr.Number if isinstance(default, (int, float)) \
            else gr.Textbox
    return component(label=info.label, value=shared.opts.data.get(key, info.default), elem_id=f"setting_{key}",
                     **args)


def _build_tab(is_img2img: bool) -> Tab:
    runner = scripts.ScriptRunner()
    runner.initialize_scripts(is_img2img)
    runner.prepare_ui()
    runner.setup_ui_for_section("sampler")
    runner.setup_ui_for_section("seed")
    inputs = runner.setup_ui()
    return Tab(runner, inputs, list(runner.infotext_fields))


def start(extension_dirs: list[str], *, nowebui: bool = True) -> WebUI:
    extensions.extensions = [extensions.Extension(os.path.basename(os.path.abspath(d)), os.path.abspath(d))
                             for d in extension_dirs]
    if FORGE:
        import modules.api.api  # noqa: F401 - Forge binds process_images before extensions load

    shared.opts.load(shared.config_filename)
    scripts.load_scripts()
    script_callbacks.before_ui_callback()
    script_callbacks.ui_settings_callback()
    shared.opts.reorder()

    tabs: dict[str, Tab] = {}
    settings_components: dict[str, Any] = {}
    # A1111's create_ui asks the extensions for their tabs before it opens the main Blocks, and
    # renders each one inside it: an extension's Blocks is built on its own, not nested.
    ui_tabs = script_callbacks.ui_tabs_callback()
    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tab("txt2img"):
            scripts.scripts_txt2img = scripts.scripts_current = None
            tab = _build_tab(False)
            scripts.scripts_txt2img = tab.runner
            tabs["txt2img"] = tab
        with gr.Tab("img2img"):
            tab = _build_tab(True)
            scripts.scripts_img2img = tab.runner
            tabs["img2img"] = tab
        with gr.Tab("Settings"):
            for key, info in shared.opts.data_labels.items():
                if info.section is None or info.do_not_save and info.component is None:
                    continue
                settings_components[key] = _setting_component(key, info)
        for interface, label, ifid in ui_tabs:
            with gr.Tab(label, id=ifid, elem_id=f"tab_{ifid}"):
                interface.render()
        for name, tab in tabs.items():
            infotext_utils.add_paste_fields(name, None, tab.paste_fields)
        infotext_utils.connect_paste_params_buttons()  # in the demo, after every tab, as the WebUI does
    shared.demo = None if nowebui else demo

    app = FastAPI()
    started_with = None if nowebui else demo
    script_callbacks.app_started_callback(started_with, app)
    from modules.api.api import Api  # A1111 imports its API module only now

    return WebUI(demo, app, Api(app, call_queue.queue_lock), tabs, settings_components, ui_tabs, started_with)
