"""The "Cloud" accordion mounted in txt2img and img2img: on/off, endpoint (with its state),
cloud checkpoint (with its Model hash).

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
from ..models import Endpoint, ModelInfo
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

    @property
    def controls(self) -> list[Any]:
        """The script's args, in order: on/off, endpoint, checkpoint."""
        return [self.enabled, self.endpoint, self.checkpoint]


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
        status = gr.Markdown("", elem_id=elem_id("status"))
    info = gr.State({})
    refresh.click(
        fn=lambda e, c: refresh_lists(get_client, e, c),
        inputs=[endpoint, checkpoint],
        outputs=[endpoint, checkpoint, status, info, endpoint_state, model_hash],
        show_progress=False,
    )
    endpoint.change(endpoint_state_html, inputs=[info, endpoint], outputs=[endpoint_state], show_progress=False)
    checkpoint.change(model_hash_html, inputs=[info, checkpoint], outputs=[model_hash], show_progress=False)
    return CloudAccordion(enabled, endpoint, checkpoint, refresh, status, endpoint_state, model_hash)
