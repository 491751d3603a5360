"""The top-level "Cloud" tab: Jobs (history with thumbnails), Endpoints, Models and Settings, built
from the shared builders so the WebUI tab and the standalone app show the same pages.

The host decides two things: where the connection is set (the standalone app's own Settings page,
or, inside the WebUI, the WebUI's Settings → SD Cloud section: here the page only shows the state
and tests it), and how "Send to txt2img" works (the WebUI's paste mechanism, or nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from ..client import SDCloudClient
from ..models.local_folders import ModelFolders
from ..settings import SettingsStore
from .endpoints_page import EndpointsPage, build_endpoints_page
from .jobs_tab import JobsTab, SendTo, build_jobs_tab
from .messages import status_html
from .models_page import ALL_TYPES, ModelsPage, build_models_page

WEBUI_SETTINGS_HINT = (
    "The API URL and key are set in the WebUI's **Settings → SD Cloud** (press *Apply settings* there); "
    "the key is kept in a file only you can read, never in config.json."
)


@dataclass(frozen=True)
class HostConnection:
    """The connection as the host keeps it (the WebUI's settings): a one-line summary (status HTML)
    and a test that reaches the API with the saved key (status HTML)."""

    summary: Callable[[], str]
    test: Callable[[], str]


@dataclass
class CloudTab:
    jobs: JobsTab
    endpoints: EndpointsPage
    models: ModelsPage
    connection_status: Any = None
    load_events: list[tuple[Callable[..., Any], list[Any], list[Any]]] = field(default_factory=list)

    def attach_load(self, blocks: gr.Blocks) -> None:
        """Fill every page when the page opens."""
        for fn, inputs, outputs in self.load_events:
            blocks.load(fn, inputs=inputs, outputs=outputs)


def _host_connection_panel(connection: HostConnection, eid: Callable[[str], str]) -> Any:
    gr.Markdown(WEBUI_SETTINGS_HINT, elem_id=eid("settings_hint"))
    with gr.Row():
        test = gr.Button("Test connection", elem_id=eid("test"), scale=0, min_width=160)
        status = gr.HTML(status_html("", "idle"), elem_id=eid("connection"))
    test.click(lambda: connection.test(), outputs=[status])
    return status


def build_cloud_tab(
    get_client: Callable[[], SDCloudClient],
    *,
    settings_store: SettingsStore | None = None,
    host_connection: HostConnection | None = None,
    outputs_dir: str | Path | None = None,
    send_to_txt2img: SendTo | None = None,
    elem_prefix: str = "sdcloud_cloud",
    local_folders: Callable[[], ModelFolders] | None = None,
) -> CloudTab:
    """Build the tab's pages in the current gradio context. Give `host_connection` inside the
    WebUI, else `settings_store` for the standalone Settings page (one of the two)."""
    if (settings_store is None) == (host_connection is None):
        raise ValueError("build_cloud_tab: give either settings_store (standalone) or host_connection (WebUI)")

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    connection_status = None
    with gr.Tabs(elem_id=eid("tabs")):
        with gr.Tab("Jobs", elem_id=eid("tab_jobs")):
            jobs = build_jobs_tab(get_client, outputs_dir=outputs_dir, elem_prefix=eid("jobs"),
                                  send_to_txt2img=send_to_txt2img)
        with gr.Tab("Endpoints", elem_id=eid("tab_endpoints")) as endpoints_tab:
            endpoints = build_endpoints_page(get_client, elem_prefix=eid("endpoints"))
        with gr.Tab("Models", elem_id=eid("tab_models")) as models_tab:
            models = build_models_page(get_client, elem_prefix=eid("models"), local_folders=local_folders)
        with gr.Tab("Settings", elem_id=eid("tab_settings")):
            if host_connection is not None:
                connection_status = _host_connection_panel(host_connection, eid)
            else:
                from .settings_tab import build_settings_tab

                assert settings_store is not None
                build_settings_tab(settings_store, elem_prefix=eid("settings"))

    # a page shows fresh state when the artist comes to it
    endpoints_tab.select(endpoints.refresh_fn, outputs=[endpoints.table, endpoints.status])
    models_tab.select(models.refresh_fn, inputs=[models.type_filter], outputs=[models.table, models.status])

    tab = CloudTab(jobs, endpoints, models, connection_status)
    tab.load_events.extend(jobs.load_events)
    tab.load_events.append((endpoints.refresh_fn, [], [endpoints.table, endpoints.status]))
    tab.load_events.append((lambda: models.refresh_fn(ALL_TYPES), [], [models.table, models.status]))
    if host_connection is not None and connection_status is not None:
        tab.load_events.append((host_connection.summary, [], [connection_status]))
    return tab
