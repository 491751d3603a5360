"""The Cloud tab inside the WebUI stand-in (A1111 under .venv-a1111, Forge under .venv-forge):
on_ui_tabs registers it (also under --nowebui, where the WebUI builds it and never shows it),
"Send to txt2img" goes through the WebUI's paste mechanism, and the harness page (accordion +
Cloud tab in one gr.Blocks) generates on the REAL middleware and inference container (tiny model)
and shows the job in the tab's history with its thumbnail, the endpoint's state and the models."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tools.local_processes import REPO

CKPT = "tiny-sd15.safetensors"
STANDIN = REPO / "tests" / "extension" / "webui_standin"


def text_of(status: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", str(status))).lstrip("✔⚠ ")


def test_on_ui_tabs_registers_the_cloud_tab_under_nowebui(webui) -> None:  # type: ignore[no-untyped-def]
    import gradio as gr
    from modules import infotext_utils

    assert webui.started_with_demo is None  # --nowebui: the UI is built but never served
    cloud = [(blocks, label, ifid) for blocks, label, ifid in webui.ui_tabs if ifid == "sdcloud_cloud_tab"]
    assert len(cloud) == 1
    blocks, label, _ = cloud[0]
    assert label == "Cloud" and isinstance(blocks, gr.Blocks)
    # the tab's components, wherever gradio filed them (a nested Blocks registers in the outer one)
    ids = {getattr(b, "elem_id", None) for b in [*blocks.blocks.values(), *webui.demo.blocks.values()]}
    assert {"sdcloud_cloud_jobs_table", "sdcloud_cloud_jobs_thumbs", "sdcloud_cloud_endpoints_table",
            "sdcloud_cloud_models_table", "sdcloud_cloud_test", "sdcloud_cloud_jobs_send_txt2img"} <= ids
    # "Send to txt2img" is registered with the WebUI's own paste mechanism, from the infotext box
    ours = [b for b in infotext_utils.registered_param_bindings
            if getattr(b.paste_button, "elem_id", "") == "sdcloud_cloud_jobs_send_txt2img"]
    assert ours and ours[0].tabname == "txt2img"
    # its source: the opened job's infotext plus the job's Cloud choice (a hidden textbox)
    assert ours[0].source_text_component.elem_id == "sdcloud_cloud_jobs_paste_text"


def test_the_tab_says_where_to_set_the_connection(webui, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from modules import shared

    from sdcloud import webui as sdcloud_webui

    # nothing set anywhere: no WebUI option, and an empty SD Cloud settings file
    monkeypatch.setenv("SDCLOUD_UI_SETTINGS", str(tmp_path / "ui-settings.json"))
    saved = shared.opts.data.get("sdcloud_api_url")
    shared.opts.data["sdcloud_api_url"] = ""
    try:
        _, tab = sdcloud_webui.build_webui_cloud_tab()
        summary = sdcloud_webui._connection_summary()
        jobs = tab.jobs.page_fn({})
        endpoints = tab.endpoints.refresh_fn()
    finally:
        shared.opts.data["sdcloud_api_url"] = saved
    assert "Settings → SD Cloud → API URL" in text_of(summary)
    assert "Settings → SD Cloud → API URL" in text_of(jobs[2])  # the page explains, it does not break
    assert "Settings → SD Cloud → API URL" in text_of(endpoints[1])


NOWEBUI = """
import sys
sys.path.insert(0, {standin!r})
import webui as standin
ui = standin.start([{repo!r}], nowebui=True)
print("TABS", [(label, ifid) for _, label, ifid in ui.ui_tabs])
print("DEMO", ui.started_with_demo)
"""


@pytest.mark.parametrize("flavour", ["a1111", "forge"])
def test_nowebui_start_builds_the_tab_without_a_request(flavour: str, tmp_path: Path) -> None:
    """A fresh WebUI under --nowebui pointing at nothing: loading the extension (settings, the
    accordion, on_ui_tabs, on_app_started(demo=None)) must neither crash nor call the API."""
    import os

    env = {**os.environ, "SDCLOUD_WEBUI_FLAVOUR": flavour, "COMMANDLINE_ARGS": f"--nowebui --data-dir {tmp_path}",
           "SDCLOUD_UI_SETTINGS": str(tmp_path / "s.json")}
    done = subprocess.run([sys.executable, "-c", NOWEBUI.format(standin=str(STANDIN), repo=str(REPO))],  # noqa: S603
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TABS [('Cloud', 'sdcloud_cloud_tab')]" in done.stdout
    assert "DEMO None" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.fixture
def harness(webui, tiny_stack):  # type: ignore[no-untyped-def]
    from modules import shared

    from tests.extension.support.harness import build_harness

    shared.opts.set("sdcloud_api_url", tiny_stack.api_url)
    shared.opts.set("sdcloud_api_key", tiny_stack.api_key)
    shared.opts.set("sdcloud_default_endpoint", "local")
    yield build_harness(webui)
    shared.state.interrupted = shared.state.skipped = False


@pytest.mark.slow
@pytest.mark.e2e
def test_harness_generates_in_the_cloud_and_the_tab_shows_the_job(harness, tiny_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modules import infotext_utils

    from sdcloud.ui.accordion import refresh_lists
    from sdcloud.ui.history import open_job
    from sdcloud.webui import get_client

    # the accordion's Refresh: endpoint with its state, checkpoint with its Model hash
    endpoint, checkpoint, status, info, endpoint_state, model_hash = refresh_lists(get_client, "local", CKPT)
    assert text_of(endpoint_state) == "local: in service"
    sha = next(m.sha256 for m in get_client().list_models() if m.name == CKPT)
    assert text_of(model_hash) == f"Model hash: {sha[:10]}"

    prompt = "a harness fox"
    outputs = list(harness.generate_fn(prompt, 64, 64, 30, True, "local", CKPT))
    steps = [int(m.group(1)) for m in (re.search(r"data-step='(\d+)' data-steps='30'", o[0]) for o in outputs) if m]
    assert len(set(steps)) >= 2 and steps == sorted(steps), f"progress did not move: {[o[0] for o in outputs]}"
    final_status, images, infotext = outputs[-1]
    assert "Done" in final_status, final_status
    assert len(images) == 1 and images[0].size == (64, 64)
    assert infotext.startswith(prompt) and "SD Cloud: local/tiny-sd15.safetensors" in infotext

    tab = harness.cloud_tab
    rows, pager, history_status, thumbs, thumb_ids = tab.jobs.page_fn({})
    assert rows[0][4] == prompt and rows[0][1] == "succeeded"
    job_id = rows[0][-1]
    assert thumb_ids[0] == job_id
    thumb_path, caption = thumbs[0]
    assert caption == prompt
    with Image.open(thumb_path) as thumb:
        assert thumb.format == "JPEG"
    endpoint_rows, endpoint_status = tab.endpoints.refresh_fn()
    assert endpoint_rows[0][:3] == ["local", "local", "in service"]
    model_rows, _ = tab.models.refresh_fn("checkpoint")
    assert [CKPT, "checkpoint"] == model_rows[0][:2] and model_rows[0][3] == sha[:10]

    # Send to txt2img: the opened job's infotext into the page's txt2img fields, Cloud on with its
    # choice (the engine's infotext does not name it: the tab adds it to what it pastes)
    opened = open_job(get_client, job_id, tmp_path)
    assert opened.images and "SD Cloud: local/tiny-sd15.safetensors" in opened.paste_text
    updates = infotext_utils._paste_values(harness.paste_fields, opened.paste_text)
    values = {id(component): update.get("value") for (component, _), update in zip(
        harness.paste_fields, updates, strict=True)}
    assert values[id(harness.fields["prompt"])] == prompt
    assert values[id(harness.fields["steps"])] == 30
    enabled, endpoint_box, checkpoint_box = harness.accordion.controls
    assert values[id(enabled)] is True and values[id(endpoint_box)] == "local" and values[id(checkpoint_box)] == CKPT
