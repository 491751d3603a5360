"""The Generate tab: txt2img / img2img controls as an A1111 user knows them, wired to the job flow.

Built into the caller's current gradio context (a Tab, a Column...), so the standalone app and the
WebUI's Cloud tab can host the same builder. No `from __future__ import annotations` here: gradio
reads the handlers' annotations (gr.SelectData) at run time.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .. import limits
from ..client import SDCloudClient
from ..errors import SDCloudError
from ..samplers import (
    DEFAULT_HIRES_UPSCALER,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE_LABEL,
    HIRES_UPSCALERS,
    SAMPLERS,
    schedule_labels_for,
)
from ..settings import default_settings_path
from . import compat
from .generation import (
    BUSY_SUBMITTING,
    DEFAULT_GENERATION_TIMEOUT_S,
    GenerateOutputs,
    cancelling_status,
    interrupt_job,
    resume_generation,
    run_generation,
)
from .messages import error_html, status_html
from .style import setup_js, stored_job_js

# Text labels (their tooltips are in style.TOOLTIPS): A1111's emoji icons are boxes where the
# system has no emoji font, as on Debian's Chromium.
GENERATE = "Generate"
RANDOM_SEED = "Random"
REUSE_SEED = "Reuse"
REFRESH = "Refresh"


def default_outputs_dir() -> Path:
    """``outputs`` in the app's data folder, beside the settings file (A1111's layout below it)."""
    return default_settings_path().parent / "outputs"


@dataclass
class GenerateTab:
    """Handles on the built tab: its components by field name, and what to run on page load."""

    inputs: dict[str, Any]
    status: Any
    gallery: Any
    infotext: Any
    generate_button: Any
    cancel_button: Any
    checkpoint: Any
    endpoint: Any
    refresh_fn: Callable[..., Any]
    generate_fn: Callable[..., Any]
    load_events: list[tuple[Callable[..., Any], list[Any], list[Any]]] = field(default_factory=list)

    resume_fn: Callable[..., Any] | None = None
    setup_js: str = ""
    resume_js: str = ""
    resume_inputs: list[Any] = field(default_factory=list)
    generation_outputs: list[Any] = field(default_factory=list)

    def attach_load(self, blocks: gr.Blocks) -> None:
        """On page open: the page scripts (tooltips, Ctrl+Enter, job memory), fill the checkpoint /
        endpoint lists, then re-attach to the job that was running before a reload."""
        if self.setup_js:
            blocks.load(None, inputs=None, outputs=None, **compat.js(self.setup_js))
        for fn, inputs, outputs in self.load_events:
            event = blocks.load(fn, inputs=inputs, outputs=outputs, show_progress=compat.HIDE_PROGRESS)
        if self.resume_fn is None or not self.load_events:
            return
        # after the lists are filled, so their "Ready" line cannot overwrite the job's status; the
        # re-attached job's last update enables Generate again (no unlock here: a generation
        # started meanwhile must keep it disabled)
        event.then(
            self.resume_fn,
            inputs=self.resume_inputs,
            outputs=self.generation_outputs,
            show_progress=compat.HIDE_PROGRESS,
            **compat.js(self.resume_js),
        )


def refresh_choices(
    get_client: Callable[[], SDCloudClient], checkpoint: Any, endpoint: Any
) -> tuple[Any, Any, str]:
    """Dropdown updates for checkpoints and endpoints, keeping the current picks when still offered."""
    try:
        client = get_client()
        models = [m.name for m in client.list_models("checkpoint")]
        endpoints = client.list_endpoints()
    except (SDCloudError, ValueError) as exc:
        return compat.no_change(), compat.no_change(), error_html(exc)
    names = [e.name for e in endpoints]
    ckpt_value = checkpoint if checkpoint in models else (models[0] if models else None)
    in_service = [e.name for e in endpoints if e.in_service]
    ep_value = (
        endpoint if endpoint in names else (in_service[0] if in_service else (names[0] if names else None))
    )
    note = f"Ready: {len(models)} checkpoint{'s' if len(models) != 1 else ''}, {len(names)} endpoint{'s' if len(names) != 1 else ''}"
    if not models:
        note = "No checkpoints in the model library yet"
    return (
        compat.update(choices=models, value=ckpt_value),
        compat.update(choices=names, value=ep_value),
        status_html(note, "idle"),
    )


def button_update(busy: str) -> Any:
    """Generate is disabled, saying what runs, while a job is in flight; enabled otherwise."""
    if busy:
        return compat.update(value=busy, interactive=False)
    return compat.update(value=GENERATE, interactive=True)


def _outputs_tuple(out: GenerateOutputs) -> tuple[Any, ...]:
    def keep(value: Any) -> Any:
        return compat.no_change() if value is None else value

    return (
        out.status,
        keep(out.images),
        keep(out.infotext),
        keep(out.job_id),
        keep(out.infotexts),
        keep(out.seeds),
        keep(out.seed),
        keep(out.preview),
        button_update(out.busy),
    )


def build_generate_tab(
    get_client: Callable[[], SDCloudClient],
    outputs_dir: str | Path | None = None,
    elem_prefix: str = "sdcloud",
    timeout: float = DEFAULT_GENERATION_TIMEOUT_S,
) -> GenerateTab:
    """Build the tab's components in the current gradio context and wire their events."""
    out_dir = Path(outputs_dir) if outputs_dir else default_outputs_dir()

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Row():
        with gr.Column(scale=6):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Prompt", elem_id=eid("prompt"))
            negative_prompt = gr.Textbox(
                label="Negative prompt",
                lines=2,
                placeholder="Negative prompt",
                elem_id=eid("negative_prompt"),
            )
        with gr.Column(scale=1, min_width=180):
            generate_button = gr.Button(GENERATE, variant="primary", elem_id=eid("generate"))
            cancel_button = gr.Button("Interrupt", variant="stop", elem_id=eid("cancel"))

    with gr.Row():
        with gr.Column(scale=1):
            task = gr.Radio(["txt2img", "img2img"], value="txt2img", label="Task", elem_id=eid("task"))
            with gr.Row():
                checkpoint = gr.Dropdown(
                    choices=[],
                    value=None,
                    label="Checkpoint",
                    allow_custom_value=True,
                    elem_id=eid("checkpoint"),
                    scale=4,
                )
                endpoint = gr.Dropdown(
                    choices=[],
                    value=None,
                    label="Endpoint",
                    allow_custom_value=True,
                    elem_id=eid("endpoint"),
                    scale=3,
                )
                refresh_button = gr.Button(REFRESH, elem_id=eid("refresh"), scale=0, min_width=80)
            with gr.Column(visible=False, elem_id=eid("img2img_group")) as img2img_group:
                init_image = compat.image_upload(label="Init image", elem_id=eid("init_image"), height=320)
                denoising_strength = gr.Slider(
                    *limits.DENOISING_STRENGTH,
                    value=0.75,
                    step=0.01,
                    label="Denoising strength",
                    elem_id=eid("denoising_strength"),
                )
            with gr.Row():
                sampler_name = gr.Dropdown(
                    list(SAMPLERS), value=DEFAULT_SAMPLER, label="Sampling method", elem_id=eid("sampler")
                )
                schedule_type = gr.Dropdown(
                    schedule_labels_for(DEFAULT_SAMPLER),
                    value=DEFAULT_SCHEDULE_LABEL,
                    label="Schedule type",
                    elem_id=eid("scheduler"),
                )
            steps = gr.Slider(*limits.STEPS, value=20, step=1, label="Sampling steps", elem_id=eid("steps"))
            with gr.Accordion("Hires. fix", open=False, elem_id=eid("hires")) as hires_group:
                enable_hr = gr.Checkbox(label="Enable Hires. fix", value=False, elem_id=eid("enable_hr"))
                with gr.Row():
                    hr_upscaler = gr.Dropdown(
                        list(HIRES_UPSCALERS),
                        value=DEFAULT_HIRES_UPSCALER,
                        label="Upscaler",
                        elem_id=eid("hr_upscaler"),
                    )
                    hr_second_pass_steps = gr.Slider(
                        *limits.HR_SECOND_PASS_STEPS, value=0, step=1, label="Hires steps", elem_id=eid("hr_steps")
                    )
                    hr_denoising_strength = gr.Slider(
                        *limits.DENOISING_STRENGTH,
                        value=0.7,
                        step=0.01,
                        label="Denoising strength",
                        elem_id=eid("hr_denoising"),
                    )
                with gr.Row():
                    hr_scale = gr.Slider(
                        # The WebUI's own slider stops at 4; the contract allows typing more.
                        limits.HR_SCALE[0],
                        min(4.0, limits.HR_SCALE[1]),
                        value=2.0,
                        step=0.05,
                        label="Upscale by",
                        elem_id=eid("hr_scale"),
                    )
                    hr_resize_x = gr.Slider(
                        0, limits.MAX_SIDE, value=0, step=limits.SIZE_MULTIPLE, label="Resize width to",
                        elem_id=eid("hr_resize_x"),
                    )
                    hr_resize_y = gr.Slider(
                        0, limits.MAX_SIDE, value=0, step=limits.SIZE_MULTIPLE, label="Resize height to",
                        elem_id=eid("hr_resize_y"),
                    )
            with gr.Row():
                with gr.Column(scale=3):
                    width = gr.Slider(
                        limits.MIN_SIDE, limits.MAX_SIDE, value=512, step=limits.SIZE_MULTIPLE, label="Width",
                        elem_id=eid("width"),
                    )
                    height = gr.Slider(
                        limits.MIN_SIDE, limits.MAX_SIDE, value=512, step=limits.SIZE_MULTIPLE, label="Height",
                        elem_id=eid("height"),
                    )
                with gr.Column(scale=1, min_width=120):
                    n_iter = gr.Slider(
                        *limits.N_ITER, value=1, step=1, label="Batch count", elem_id=eid("batch_count")
                    )
                    batch_size = gr.Slider(
                        *limits.BATCH_SIZE, value=1, step=1, label="Batch size", elem_id=eid("batch_size")
                    )
            cfg_scale = gr.Slider(*limits.CFG_SCALE, value=7.0, step=0.5, label="CFG Scale", elem_id=eid("cfg_scale"))
            with gr.Row():
                # no precision: gradio would round 1.5 to 2 silently; validate_seed says what to fix
                seed = gr.Number(label="Seed", value=-1, elem_id=eid("seed"), scale=4)
                random_seed = gr.Button(RANDOM_SEED, elem_id=eid("random_seed"), scale=0, min_width=80)
                reuse_seed = gr.Button(REUSE_SEED, elem_id=eid("reuse_seed"), scale=0, min_width=80)

        with gr.Column(scale=1):
            status = gr.HTML(status_html("Ready", "idle"), elem_id=eid("progress"))
            preview = gr.HTML("", elem_id=eid("preview"), elem_classes=["sdcloud-preview"])
            gallery = gr.Gallery(
                label="Output",
                show_label=False,
                elem_id=eid("gallery"),
                columns=2,
                height=512,
                object_fit="contain",
            )
            infotext = gr.Textbox(
                label="Generation info",
                lines=5,
                interactive=False,
                show_copy_button=True,
                elem_id=eid("infotext"),
            )

    job_state = gr.State(None)
    infotexts_state = gr.State([])
    seeds_state = gr.State([])
    seed_state = gr.State(None)  # the seed Reuse puts back: the selected image's
    # the job id remembered in the browser before a reload (the js hook fills it in)
    resume_box = gr.Textbox(value="", visible=False, elem_id=eid("resume_job"))

    inputs: dict[str, Any] = {
        "task": task,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "sampler_name": sampler_name,
        "schedule_type": schedule_type,
        "steps": steps,
        "cfg_scale": cfg_scale,
        "width": width,
        "height": height,
        "seed": seed,
        "n_iter": n_iter,
        "batch_size": batch_size,
        "enable_hr": enable_hr,
        "hr_upscaler": hr_upscaler,
        "hr_second_pass_steps": hr_second_pass_steps,
        "hr_denoising_strength": hr_denoising_strength,
        "hr_scale": hr_scale,
        "hr_resize_x": hr_resize_x,
        "hr_resize_y": hr_resize_y,
        "init_image": init_image,
        "denoising_strength": denoising_strength,
        "checkpoint": checkpoint,
        "endpoint": endpoint,
    }
    name_of = {component: name for name, component in inputs.items()}

    generation_outputs = [
        status, gallery, infotext, job_state, infotexts_state, seeds_state, seed_state, preview, generate_button
    ]

    # gradio passes a set of inputs as one {component: value} dict
    def on_generate(data, progress=None):
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        for out in run_generation(get_client, values, out_dir, progress=progress, timeout=timeout):
            yield _outputs_tuple(out)

    def on_resume(job_id):
        attached = False
        for out in resume_generation(get_client, job_id, out_dir, timeout=timeout):
            attached = True
            yield _outputs_tuple(out)
        if not attached:  # no job to re-attach to: leave the page (and the button) as they are
            yield (compat.no_change(),) * len(generation_outputs)

    def lock():
        return button_update(BUSY_SUBMITTING)

    def unlock():
        return button_update("")

    # lock at once (no queue), then the generation; the unlock runs after it whatever happened
    generate_button.click(lock, inputs=None, outputs=[generate_button], queue=False,
                          show_progress=compat.HIDE_PROGRESS).then(
        on_generate,
        inputs=set(inputs.values()),
        outputs=generation_outputs,
        show_progress=compat.HIDE_PROGRESS,
    ).then(unlock, inputs=None, outputs=[generate_button], queue=False, show_progress=compat.HIDE_PROGRESS)

    def on_interrupt(job_id):
        return interrupt_job(get_client, job_id)

    # "Cancelling…" at once, then cancel and show how the job really ended (asked from the
    # server): the running generation ends with the same words, so neither overwrites the other
    cancel_button.click(cancelling_status, inputs=[job_state], outputs=[status], queue=False,
                        show_progress=compat.HIDE_PROGRESS).then(
        on_interrupt, inputs=[job_state], outputs=[status], show_progress=compat.HIDE_PROGRESS
    )

    def on_select(texts, seeds, evt: gr.SelectData):
        index = evt.index if isinstance(evt.index, int) else 0
        text = texts[index] if texts and 0 <= index < len(texts) else compat.no_change()
        seed_value = seeds[index] if seeds and 0 <= index < len(seeds) else compat.no_change()
        return text, seed_value

    gallery.select(on_select, inputs=[infotexts_state, seeds_state], outputs=[infotext, seed_state])

    def on_task(value):
        is_img2img = value == "img2img"
        return compat.update(visible=is_img2img), compat.update(visible=not is_img2img)

    task.change(on_task, inputs=[task], outputs=[img2img_group, hires_group], queue=False)

    def on_sampler(sampler, schedule):
        labels = schedule_labels_for(sampler)
        return compat.update(choices=labels, value=schedule if schedule in labels else DEFAULT_SCHEDULE_LABEL)

    # offer only the schedule types the engine can run with this sampler
    sampler_name.change(on_sampler, inputs=[sampler_name, schedule_type], outputs=[schedule_type], queue=False)

    random_seed.click(lambda: -1, inputs=None, outputs=[seed], queue=False, show_progress=compat.HIDE_PROGRESS)

    def on_reuse(last_seed, current):
        return current if last_seed is None else last_seed

    reuse_seed.click(
        on_reuse, inputs=[seed_state, seed], outputs=[seed], queue=False, show_progress=compat.HIDE_PROGRESS
    )

    def on_refresh(ckpt, ep):
        return refresh_choices(get_client, ckpt, ep)

    refresh_button.click(
        on_refresh,
        inputs=[checkpoint, endpoint],
        outputs=[checkpoint, endpoint, status],
        show_progress=compat.HIDE_PROGRESS,
    )

    tab = GenerateTab(
        inputs=inputs,
        status=status,
        gallery=gallery,
        infotext=infotext,
        generate_button=generate_button,
        cancel_button=cancel_button,
        checkpoint=checkpoint,
        endpoint=endpoint,
        refresh_fn=on_refresh,
        generate_fn=on_generate,
        resume_fn=on_resume,
        setup_js=setup_js(elem_prefix),
        resume_js=stored_job_js(elem_prefix),
        resume_inputs=[resume_box],
        generation_outputs=generation_outputs,
    )
    tab.load_events.append((on_refresh, [checkpoint, endpoint], [checkpoint, endpoint, status]))
    return tab
