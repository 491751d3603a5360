"""The Settings tab: API URL + API key (password field), Save, Test connection.

The key field always starts empty and is cleared after saving: the key is never sent back to the
browser, only where it comes from ("key saved", "key given at start-up (not saved)", "no API key").
Save says exactly what it did to the key: saved, unchanged or cleared.
"""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..settings import SettingsStore
from . import compat
from .connection import ClientFactory, check_connection, key_status, quick_client, save_connection
from .messages import status_html


@dataclass
class SettingsTab:
    api_url: Any
    api_key: Any
    key_status: Any
    status: Any
    save_button: Any
    test_button: Any
    clear_button: Any = None


def build_settings_tab(
    settings_store: SettingsStore,
    elem_prefix: str = "sdcloud_settings",
    client_factory: ClientFactory = quick_client,
) -> SettingsTab:
    """Build the tab's components in the current gradio context and wire their events."""

    def eid(name: str) -> str:
        return f"{elem_prefix}_{name}"

    current = settings_store.current()
    with gr.Column():
        api_url = gr.Textbox(
            label="API URL",
            value=current.api_url,
            placeholder="https://xxxx.execute-api.region.amazonaws.com or http://127.0.0.1:8000",
            elem_id=eid("api_url"),
        )
        with gr.Row():
            api_key = gr.Textbox(
                label="API key",
                type="password",
                value="",
                placeholder="paste a key to replace the saved one; leave empty to keep it",
                elem_id=eid("api_key"),
                scale=4,
            )
            saved = gr.Textbox(
                label="Key",
                value=key_status(settings_store),
                interactive=False,
                elem_id=eid("key_status"),
                scale=1,
            )
        with gr.Row():
            save_button = gr.Button("Save", variant="primary", elem_id=eid("save"))
            test_button = gr.Button("Test connection", elem_id=eid("test"))
            clear_button = gr.Button("Remove saved key", elem_id=eid("clear_key"))
        status = gr.HTML(status_html(f"Settings file: {settings_store.path}", "idle"), elem_id=eid("status"))

    def on_save(url, key):
        result = save_connection(settings_store, url, key)
        # clear the password field whatever happened: the key must not linger in the page
        return result.message, compat.update(value=""), result.key_status

    save_button.click(on_save, inputs=[api_url, api_key], outputs=[status, api_key, saved])

    def on_clear(url):
        result = save_connection(settings_store, url, None, clear_key=True)
        return result.message, compat.update(value=""), result.key_status

    clear_button.click(on_clear, inputs=[api_url], outputs=[status, api_key, saved])

    def on_test(url, key):
        return check_connection(settings_store, url, key, client_factory)

    test_button.click(on_test, inputs=[api_url, api_key], outputs=[status])

    return SettingsTab(api_url, api_key, saved, status, save_button, test_button, clear_button)
