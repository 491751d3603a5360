"""The standalone shell: the three tabs in one gr.Blocks with the queue on."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import __version__
from ..settings import ClientProvider, SettingsStore
from . import compat
from .generate_tab import build_generate_tab
from .jobs_tab import build_jobs_tab
from .settings_tab import build_settings_tab
from .style import CSS


def build_standalone(store: SettingsStore, outputs_dir: str | Path | None = None) -> gr.Blocks:
    """A ready-to-launch Blocks: Generate, Jobs, Settings; clients follow the saved settings."""
    get_client = ClientProvider(store)
    # the local theme: gradio's stock ones make the page ask fonts.googleapis.com for fonts
    with gr.Blocks(title="SD Cloud", css=CSS, analytics_enabled=False, theme=compat.local_theme()) as demo:
        gr.Markdown(f"## SD Cloud <small>v{__version__}</small>", elem_id="sdcloud_title")
        with gr.Tabs(elem_id="sdcloud_tabs"):
            with gr.Tab("Generate", elem_id="sdcloud_tab_generate"):
                generate = build_generate_tab(get_client, outputs_dir=outputs_dir)
            with gr.Tab("Jobs", elem_id="sdcloud_tab_jobs"):
                jobs = build_jobs_tab(get_client, outputs_dir=outputs_dir)
            with gr.Tab("Settings", elem_id="sdcloud_tab_settings"):
                build_settings_tab(store)
        generate.attach_load(demo)
        jobs.attach_load(demo)
    return compat.enable_queue(demo)
