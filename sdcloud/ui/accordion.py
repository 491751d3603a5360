"""The "Cloud" accordion mounted in txt2img and img2img: on/off, endpoint (with its state),
cloud checkpoint (with its Model hash), and pickers of the cloud library's LoRA, embeddings and
VAE: a LoRA goes into the prompt as `<lora:name:1>` and an embedding as its name (as A1111's extra
networks insert them, in the browser), the VAE is a script arg that becomes the job's
`override_settings.sd_vae`.

It makes no network call while it is built (the WebUI builds it again for its API defaults);
the Refresh button fills the lists from the middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..client import SDCloudClient
from ..records import Endpoint, ModelInfo
from . import compat
from .compat import update
from .endpoints_page import state_label
from .messages import describe_error, status_html

log = logging.getLogger("sdcloud.ui")


@dataclass
class CloudAccordion:
    enabled: Any
    endpoint: Any
    checkpoint: Any
    refresh: Any
    status: Any
    endpoint_state: Any = None
    model_hash: Any = None
    lora: Any = None
    embedding: Any = None
    vae: Any = None

    @property
    def controls(self) -> list[Any]:
        """On/off, endpoint, checkpoint: the fields an infotext paste fills."""
        return [self.enabled, self.endpoint, self.checkpoint]

    @property
    def script_args(self) -> list[Any]:
        """The script's args, in order: on/off, endpoint, checkpoint, cloud VAE."""
        return [*self.controls, *([self.vae] if self.vae is not None else [])]


VAE_AUTOMATIC = "Automatic"

# Runs in the browser: add the picked text to this tab's prompt (A1111 / Forge keep it in
# #<tab>_prompt textarea) unless it is there already, and tell gradio the value changed.
_INSERT_JS = """(picked) => {
  if (!picked) { return []; }
  const root = typeof gradioApp === "function" ? gradioApp() : document;
  const box = root.querySelector("#%s_prompt textarea");
  if (!box || box.value.includes(picked)) { return []; }
  const sep = box.value === "" || /[\\s,]$/.test(box.value) ? "" : ", ";
  box.value = box.value + sep + picked;
  if (typeof updateInput === "function") { updateInput(box); }
  else { box.dispatchEvent(new Event("input", { bubbles: true })); }
  return [];
}"""


def network_name(file_name: str) -> str:
    """The name A1111 uses in prompts for a LoRA / embedding file: the file name without its
    extension (``ink.safetensors`` -> ``ink``)."""
    name = str(file_name or "").strip()
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and ext.lower() in ("safetensors", "pt", "ckpt", "bin", "pth") else name


def lora_tag(file_name: str, weight: float = 1.0) -> str:
    """`<lora:name:1>` as A1111's extra networks insert it."""
    return f"<lora:{network_name(file_name)}:{weight:g}>"


def prompt_with(prompt: str, picked: str) -> str:
    """The prompt with `picked` added (", " between), unchanged when it holds it already. The
    browser does this for the pickers (_INSERT_JS); this is the same rule for tests and other hosts."""
    if not picked or picked in prompt:
        return prompt
    sep = "" if not prompt or prompt[-1] in " ,\n\t" else ", "
    return prompt + sep + picked


def picker_choices(models: list[ModelInfo]) -> tuple[list[str], list[str], list[str]]:
    """The pickers' choices: the text each inserts (`<lora:ink:1>`, `bad-hands`; gradio 3.41 has no
    (label, value) choices, and the tag is what A1111 users read anyway), and the VAE names
    (Automatic first)."""
    by_name = sorted(models, key=lambda m: m.name.lower())
    loras = list(dict.fromkeys(lora_tag(m.name) for m in by_name if m.type == "lora"))
    embeddings = list(dict.fromkeys(network_name(m.name) for m in by_name if m.type == "embedding"))
    vaes = [VAE_AUTOMATIC, *dict.fromkeys(m.name for m in by_name if m.type == "vae")]
    return loras, embeddings, vaes


def refresh_pickers(get_client: Callable[[], SDCloudClient], vae: str) -> tuple[Any, Any, Any]:
    """Updates for the LoRA, embedding and VAE pickers (the VAE pick kept when still offered)."""
    try:
        models = [m for t in ("lora", "embedding", "vae") for m in get_client().list_models(t)]
    except Exception:  # refresh_lists shows the error in the status line; keep the pickers as they are
        return update(), update(), update()
    loras, embeddings, vaes = picker_choices(models)
    keep = vae if vae in vaes else VAE_AUTOMATIC
    return (update(choices=loras, value=None), update(choices=embeddings, value=None),
            update(choices=vaes, value=keep))


def catalog_info(endpoints: list[Endpoint], models: list[ModelInfo]) -> dict[str, dict[str, str]]:
    """What the accordion shows beside its pickers, kept in gradio state: each endpoint's state in
    words and each checkpoint's Model hash (the WebUI's short sha256)."""
    return {"endpoints": {e.name: state_label(e) for e in endpoints},
            "models": {m.name: m.short_hash for m in models}}


def endpoint_state_html(info: Any, endpoint: Any) -> str:
    states = (info or {}).get("endpoints", {}) if isinstance(info, dict) else {}
    name = str(endpoint or "").strip()
    if not name:
        return ""
    label = states.get(name)
    if label is None:
        return status_html(f"{name}: press Refresh for its state", "idle")
    good = label == "in service" or label.startswith("scaled to zero")
    return status_html(f"{name}: {label}", "done" if good else "error")


def model_hash_html(info: Any, checkpoint: Any) -> str:
    hashes = (info or {}).get("models", {}) if isinstance(info, dict) else {}
    short = hashes.get(str(checkpoint or "").strip())
    return status_html(f"Model hash: {short}", "idle") if short else ""


def refresh_lists(
    get_client: Callable[[], SDCloudClient], endpoint: str, checkpoint: str
) -> tuple[Any, Any, str, Any, Any, Any]:
    """Updates for the endpoint and checkpoint dropdowns (the current values kept), a status line,
    the catalog info (state) and the two lines shown beside the pickers."""
    try:
        client = get_client()
        endpoint_list = client.list_endpoints()
        model_list = client.list_models()
    except Exception as exc:  # shown in the accordion; the page must not break
        return update(), update(), describe_error(exc), update(), update(), update()
    endpoints = [e.name for e in endpoint_list]
    models = [m.name for m in model_list]
    endpoint = endpoint or (endpoints[0] if endpoints else "")
    checkpoint = checkpoint or (models[0] if models else "")
    info = catalog_info(endpoint_list, model_list)
    text = f"{len(endpoints)} endpoint(s), {len(models)} checkpoint(s)"
    return (update(choices=sorted(set(endpoints) | ({endpoint} - {""})), value=endpoint),
            update(choices=sorted(set(models) | ({checkpoint} - {""})), value=checkpoint), text, info,
            endpoint_state_html(info, endpoint), model_hash_html(info, checkpoint))


def build_cloud_accordion(
    elem_id: Callable[[str], str],
    get_client: Callable[[], SDCloudClient],
    default_endpoint: str = "",
) -> CloudAccordion:
    with gr.Accordion("Cloud", open=False, elem_id=elem_id("accordion"), elem_classes=["sdcloud-accordion"]):
        enabled = gr.Checkbox(value=False, label="Generate in the cloud (SD Cloud)", elem_id=elem_id("enabled"))
        with gr.Row():
            endpoint = gr.Dropdown(label="Endpoint", choices=[default_endpoint] if default_endpoint else [],
                                   value=default_endpoint, allow_custom_value=True, elem_id=elem_id("endpoint"))
            checkpoint = gr.Dropdown(label="Cloud checkpoint", choices=[], value="", allow_custom_value=True,
                                     elem_id=elem_id("checkpoint"))
            refresh = gr.Button(value="Refresh", elem_id=elem_id("refresh"), elem_classes=["sdcloud-refresh"],
                                size="sm", min_width=40)
        with gr.Row(elem_classes=["sdcloud-picker-info"]):
            endpoint_state = gr.HTML("", elem_id=elem_id("endpoint_state"))
            model_hash = gr.HTML("", elem_id=elem_id("model_hash"))
        with gr.Row():
            lora = gr.Dropdown(label="Cloud LoRA (adds it to the prompt)", choices=[], value=None,
                               elem_id=elem_id("lora"))
            embedding = gr.Dropdown(label="Cloud embedding (adds it to the prompt)", choices=[], value=None,
                                    elem_id=elem_id("embedding"))
            vae = gr.Dropdown(label="Cloud VAE", choices=[VAE_AUTOMATIC], value=VAE_AUTOMATIC,
                              allow_custom_value=True, elem_id=elem_id("vae"))
        status = gr.Markdown("", elem_id=elem_id("status"))
    info = gr.State({})
    tab = "img2img" if "img2img" in elem_id("x") else "txt2img"
    refresh.click(
        fn=lambda e, c: refresh_lists(get_client, e, c),
        inputs=[endpoint, checkpoint],
        outputs=[endpoint, checkpoint, status, info, endpoint_state, model_hash],
        show_progress=False,
    )
    endpoint.change(endpoint_state_html, inputs=[info, endpoint], outputs=[endpoint_state], show_progress=False)
    checkpoint.change(model_hash_html, inputs=[info, checkpoint], outputs=[model_hash], show_progress=False)
    refresh.click(fn=lambda v: refresh_pickers(get_client, v), inputs=[vae], outputs=[lora, embedding, vae],
                  show_progress=False)
    for picker in (lora, embedding):
        # the browser inserts the pick into the prompt; the picker then goes back to empty so the
        # same pick can be made again
        picker.change(None, inputs=[picker], outputs=[], **compat.js(_INSERT_JS % tab))
        picker.change(lambda v: update(value=None) if v else update(), inputs=[picker], outputs=[picker],
                      show_progress=False)
    return CloudAccordion(enabled, endpoint, checkpoint, refresh, status, endpoint_state, model_hash,
                          lora, embedding, vae)
