"""A harness page: the real Cloud accordion over the stand-in WebUI's own txt2img Generate flow,
and the real Cloud tab (what ``sdcloud.webui.on_ui_tabs`` returns), in one gr.Blocks — what an
artist sees in the WebUI, without the WebUI's page around it.

Generate goes through the stand-in's ``txt2img`` (the WebUI's queue wrapper, processing, our
Script's takeover), so it reaches the real middleware and container; while it runs, the page
shows ``shared.state`` the way the WebUI's progress bar does (job, step i/N, textinfo).
"Send to txt2img" in the Cloud tab pastes into this page's txt2img fields through the stand-in's
paste mechanism, as the WebUI wires it after building its tabs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

SEED_ARGS = [-1, False, -1, 0.0, 0, 0]  # the built-in Seed script's args (random seed)
PROGRESS_POLL_S = 0.1


def progress_html(state: Any) -> str:
    """The WebUI progress bar's text from shared.state (the numbers it shows, in one line)."""
    steps = int(state.sampling_steps or 0)
    step = int(state.sampling_step or 0)
    text = state.textinfo or "Waiting…"
    if steps > 0:
        text = f"{text} — step {step}/{steps}"
    return f"<div class='harness-progress' data-step='{step}' data-steps='{steps}'>{text}</div>"


@dataclass
class Harness:
    demo: gr.Blocks
    accordion: Any
    generate_fn: Callable[..., Iterator[tuple[Any, ...]]]
    cloud_tab_blocks: gr.Blocks
    cloud_tab: Any  # sdcloud.ui.cloud_tab.CloudTab: the pages' handlers
    fields: dict[str, Any]
    paste_fields: list[tuple[Any, Any]]


def build_harness(webui: Any) -> Harness:
    """The page for a started stand-in WebUI (tests/extension/conftest.py's `webui` fixture)."""
    from modules import infotext_utils, shared

    from sdcloud import webui as sdcloud_webui
    from sdcloud.ui import compat
    from sdcloud.ui.accordion import build_cloud_accordion

    tab = webui.tabs["txt2img"]
    script = tab.script("SD Cloud")
    bindings_before = len(infotext_utils.registered_param_bindings)
    # as the WebUI does: the extension tabs are built first, outside the page, then rendered in it
    cloud_blocks, cloud_tab = sdcloud_webui.build_webui_cloud_tab()  # what on_ui_tabs returns
    with gr.Blocks(title="SD Cloud harness", analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                prompt = gr.Textbox(value="", label="Prompt", lines=2, elem_id="txt2img_prompt")
                with gr.Row():
                    width = gr.Slider(64, 512, value=64, step=64, label="Width", elem_id="txt2img_width")
                    height = gr.Slider(64, 512, value=64, step=64, label="Height", elem_id="txt2img_height")
                    steps = gr.Slider(1, 150, value=30, step=1, label="Sampling steps", elem_id="txt2img_steps")
                accordion = build_cloud_accordion(script.elem_id, sdcloud_webui.get_client,
                                                  str(shared.opts.data.get("sdcloud_default_endpoint", "")))
                generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
                progress = gr.HTML("", elem_id="txt2img_progress")
                gallery = gr.Gallery(label="Output", columns=2, elem_id="txt2img_gallery")
                info = gr.Textbox(label="Generation info", lines=3, elem_id="txt2img_info")
            with gr.Tab("Cloud", id="sdcloud_cloud_tab", elem_id="tab_sdcloud_cloud_tab"):
                cloud_blocks.render()

        fields = {"prompt": prompt, "width": width, "height": height, "steps": steps}
        paste_fields = [(prompt, "Prompt"), (width, "Size-1"), (height, "Size-2"), (steps, "Steps"),
                        *sdcloud_webui.accordion_paste_fields(accordion)]
        # the WebUI connects "Send to txt2img" after its tabs are built: here, for this page's fields
        for binding in infotext_utils.registered_param_bindings[bindings_before:]:
            infotext_utils.connect_paste(binding.paste_button, paste_fields, binding.source_text_component,
                                         None, binding.tabname)

    def generate_fn(prompt_value, width_value, height_value, steps_value, enabled, endpoint, checkpoint):
        args = tab.script_args({"SD Cloud": [enabled, endpoint, checkpoint],
                                "Sampler": [int(steps_value), "Euler", "Automatic"], "Seed": list(SEED_ARGS)})
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["out"] = webui.txt2img(prompt=prompt_value, width=int(width_value), height=int(height_value),
                                              script_args=args)
            except Exception as exc:  # shown on the page as the WebUI would show it
                result["error"] = f"{type(exc).__name__}: {exc}"

        shared.state.textinfo = None
        shared.state.sampling_step = shared.state.sampling_steps = 0
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        last = ""
        while worker.is_alive():
            shown = progress_html(shared.state)
            if shown != last:
                last = shown
                yield shown, compat.no_change(), compat.no_change()
            time.sleep(PROGRESS_POLL_S)
        worker.join()
        if "error" in result:
            yield f"<div class='error'>{result['error']}</div>", compat.no_change(), compat.no_change()
            return
        images, js, info_html, _ = result["out"]
        if not isinstance(images, list) or not js:
            yield info_html, compat.no_change(), compat.no_change()
            return
        infotexts = json.loads(js).get("infotexts") or [""]
        yield "<div class='harness-progress' data-done='1'>Done</div>", images, infotexts[0]

    with demo:
        generate.click(generate_fn, inputs=[prompt, width, height, steps, *accordion.controls],
                       outputs=[progress, gallery, info])
    compat.enable_queue(demo)
    return Harness(demo, accordion, generate_fn, cloud_blocks, cloud_tab, fields, paste_fields)
