"""The Cloud tab's Models page: the models the cloud holds (name, type, size, short hash), filtered
by type. A listing only (uploads come later). Pure parts first, the gradio builder at the end.

No `from __future__ import annotations`: gradio reads the handlers' annotations at run time.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..models import ModelInfo
from .messages import describe_error, status_html

log = logging.getLogger("sdcloud.ui")

MODEL_HEADERS = ["Name", "Type", "Size", "Model hash"]
ALL_TYPES = "All"
MODEL_TYPES = [ALL_TYPES, "checkpoint", "lora", "embedding", "vae"]


def human_size(size: int) -> str:
    """1536 -> '1.5 KB', as a file manager shows it (powers of 1024)."""
    if size <= 0:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop always returns


def model_row(model: ModelInfo) -> list[str]:
    return [model.name, model.type, human_size(model.size), model.short_hash]


def model_rows(models: list[ModelInfo], type_filter: str = ALL_TYPES) -> list[list[str]]:
    """Rows sorted by type then name (case-insensitive), only `type_filter` unless All."""
    wanted = [m for m in models if type_filter in ("", ALL_TYPES, None) or m.type == type_filter]
    return [model_row(m) for m in sorted(wanted, key=lambda m: (m.type, m.name.lower()))]


@dataclass(frozen=True)
class ModelsView:
    rows: Optional[list[list[str]]]  # None: keep the table as it is
    status: str


def list_models(get_client: Callable[[], SDCloudClient], type_filter: str = ALL_TYPES) -> ModelsView:
    wanted = None if type_filter in ("", ALL_TYPES, None) else type_filter
    try:
        models = get_client().list_models(wanted)
    except Exception as exc:
        if not isinstance(exc, (SDCloudError, ValueError)):
            log.exception("listing models failed unexpectedly")
        return ModelsView(None, status_html(describe_error(exc), "error"))
    rows = model_rows(models, type_filter or ALL_TYPES)
    what = "model" if wanted is None else wanted
    text = f"{len(rows)} {what}(s) in the cloud" if rows else f"No {what} in the cloud yet"
    return ModelsView(rows, status_html(text, "idle"))


# ---- the gradio page -------------------------------------------------------------------------


@dataclass
class ModelsPage:
    table: Any
    status: Any
    type_filter: Any
    refresh: Any
    refresh_fn: Callable[[str], tuple[Any, Any]]


def build_models_page(get_client: Callable[[], SDCloudClient], elem_prefix: str = "sdcloud_models") -> ModelsPage:
    """Build the page in the current gradio context and wire its events."""
    import gradio as gr

    from . import compat

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    with gr.Row():
        type_filter = gr.Dropdown(label="Type", choices=list(MODEL_TYPES), value=ALL_TYPES,
                                  elem_id=eid("type"), scale=0, min_width=160)
        refresh = gr.Button("Refresh", elem_id=eid("refresh"), size="sm", scale=0, min_width=90)
        status = gr.HTML(status_html("", "idle"), elem_id=eid("status"))
    table = gr.Dataframe(headers=list(MODEL_HEADERS), datatype=["str"] * len(MODEL_HEADERS),
                         interactive=False, wrap=True, type="array", elem_id=eid("table"))

    def on_refresh(type_value):
        view = list_models(get_client, type_value or ALL_TYPES)
        return (compat.no_change() if view.rows is None else view.rows), view.status

    refresh.click(on_refresh, inputs=[type_filter], outputs=[table, status])
    type_filter.change(on_refresh, inputs=[type_filter], outputs=[table, status])
    return ModelsPage(table, status, type_filter, refresh, on_refresh)
