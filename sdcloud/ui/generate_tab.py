"""The Generate tab: txt2img / img2img controls as an A1111 user knows them, wired to the job flow.

Built into the caller's current gradio context (a Tab, a Column...), so the standalone app and the
WebUI's Cloud tab can host the same builder. No `from __future__ import annotations` here: gradio
reads the handlers' annotations (gr.SelectData) at run time.
"""

import tempfile
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
from . import compat
from .generation import (
    DEFAULT_GENERATION_TIMEOUT_S,
    GenerateOutputs,
    cancel_generation,
    cancelling_status,
    run_generation,
)
from .messages import error_html, status_html

RANDOM_SEED = "\U0001f3b2\ufe0f"  # 🎲️ as in A1111
REUSE_SEED = "\u267b\ufe0f"  # ♻️
REFRESH = "\U0001f504"  # 🔄


def default_outputs_dir() -> Path:
    """Under the system temp dir, which gradio 3 and 4 both allow serving files from."""
    return Path(tempfile.gettempdir()) / "sdcloud-outputs"


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

    def attach_load(self, blocks: gr.Blocks) -> None:
        """Fill the checkpoint / endpoint lists when the page opens."""
        for fn, inputs, outputs in self.load_events:
            blocks.load(fn, inputs=inputs, outputs=outputs)


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
            generate_button = gr.Button("Generate", variant="primary", elem_id=eid("generate"))
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
                refresh_button = gr.Button(REFRESH, elem_id=eid("refresh"), scale=0, min_width=48)
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
                seed = gr.Number(label="Seed", value=-1, precision=0, elem_id=eid("seed"), scale=4)
                random_seed = gr.Button(RANDOM_SEED, elem_id=eid("random_seed"), scale=0, min_width=48)
                reuse_seed = gr.Button(REUSE_SEED, elem_id=eid("reuse_seed"), scale=0, min_width=48)

        with gr.Column(scale=1):
            status = gr.HTML(status_html("Ready", "idle"), elem_id=eid("progress"))
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
    seed_state = gr.State(None)  # the seed ♻️ puts back: the selected image's

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

    # gradio passes a set of inputs as one {component: value} dict, which keeps the Progress
    # parameter detectable (it is not with *args)
    def on_generate(data, progress=gr.Progress()):  # noqa: B008 - gradio's documented idiom
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        for out in run_generation(get_client, values, out_dir, progress=progress, timeout=timeout):
            yield _outputs_tuple(out)

    generate_button.click(
        on_generate,
        inputs=set(inputs.values()),
        outputs=[status, gallery, infotext, job_state, infotexts_state, seeds_state, seed_state],
        show_progress="full",
    )

    def on_cancel(job_id):
        outcome, problem = cancel_generation(get_client, job_id)
        return problem if outcome == "failed" else compat.no_change()

    # Say "Cancelling…" first, then cancel: the server-side cancel ends the job and the running
    # generation reports "Cancelled" itself, which must not be overwritten by this handler.
    cancel_button.click(cancelling_status, inputs=[job_state], outputs=[status], queue=False).then(
        on_cancel, inputs=[job_state], outputs=[status], queue=False
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

    random_seed.click(lambda: -1, inputs=None, outputs=[seed], queue=False)

    def on_reuse(last_seed, current):
        return current if last_seed is None else last_seed

    reuse_seed.click(on_reuse, inputs=[seed_state, seed], outputs=[seed], queue=False)

    def on_refresh(ckpt, ep):
        return refresh_choices(get_client, ckpt, ep)

    refresh_button.click(on_refresh, inputs=[checkpoint, endpoint], outputs=[checkpoint, endpoint, status])

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
    )
    tab.load_events.append((on_refresh, [checkpoint, endpoint], [checkpoint, endpoint, status]))
    return tab
