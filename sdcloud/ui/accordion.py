"""The "Cloud" accordion mounted in txt2img and img2img: on/off, endpoint, cloud checkpoint.

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
from .compat import update
from .messages import describe_error

log = logging.getLogger("sdcloud.ui")


@dataclass
class CloudAccordion:
    enabled: Any
    endpoint: Any
    checkpoint: Any
    refresh: Any
    status: Any

    @property
    def controls(self) -> list[Any]:
        """The script's args, in order: on/off, endpoint, checkpoint."""
        return [self.enabled, self.endpoint, self.checkpoint]


def _choices(get_client: Callable[[], SDCloudClient]) -> tuple[list[str], list[str], str]:
    client = get_client()
    endpoints = [f"{e.name}" for e in client.list_endpoints()]
    models = [m.name for m in client.list_models()]
    return endpoints, models, ""


def refresh_lists(get_client: Callable[[], SDCloudClient], endpoint: str, checkpoint: str) -> tuple[Any, Any, str]:
    """Updates for the endpoint and checkpoint dropdowns (the current values kept) and a status line."""
    try:
        endpoints, models, _ = _choices(get_client)
    except Exception as exc:  # shown in the accordion; the page must not break
        return update(), update(), describe_error(exc)
    endpoint = endpoint or (endpoints[0] if endpoints else "")
    checkpoint = checkpoint or (models[0] if models else "")
    text = f"{len(endpoints)} endpoint(s), {len(models)} checkpoint(s)"
    return (update(choices=sorted(set(endpoints) | ({endpoint} - {""})), value=endpoint),
            update(choices=sorted(set(models) | ({checkpoint} - {""})), value=checkpoint), text)


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
        status = gr.Markdown("", elem_id=elem_id("status"))
    refresh.click(
        fn=lambda e, c: refresh_lists(get_client, e, c),
        inputs=[endpoint, checkpoint],
        outputs=[endpoint, checkpoint, status],
        show_progress=False,
    )
    return CloudAccordion(enabled, endpoint, checkpoint, refresh, status)
