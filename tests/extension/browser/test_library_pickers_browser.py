"""The accordion's cloud library pickers in Chromium (the harness page over the stand-in WebUI,
REAL middleware): after Refresh, picking a LoRA adds `<lora:name:1>` to the txt2img prompt and
picking an embedding adds its name, as A1111's extra networks do; the VAE picker lists the VAE."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdcloud.client import SDCloudClient
from sdcloud.models.uploader import Uploader
from tools.local_processes import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.e2e]

ACC = "#script_txt2img_sd_cloud"


def tiny_safetensors(path: Path) -> Path:
    data = 64
    header = json.dumps({"w": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}).encode().ljust(64)
    path.write_bytes(struct.pack("<Q", len(header)) + header + uuid.uuid4().bytes * 4)
    return path


@pytest.fixture(scope="module")
def picker_page(webui, backend, tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    from modules import shared

    from tests.extension.support.harness import build_harness

    folder = tmp_path_factory.mktemp("library")
    client = SDCloudClient(backend.api_url, backend.api_key)
    tag = uuid.uuid4().hex[:6]
    names = {"lora": f"ink{tag}.safetensors", "embedding": f"hands{tag}.safetensors", "vae": f"clear{tag}.safetensors"}
    for type_, name in names.items():
        Uploader(client, state_dir=folder / "state").upload(tiny_safetensors(folder / name), type_)
    shared.opts.set("sdcloud_api_url", backend.api_url)
    shared.opts.set("sdcloud_api_key", backend.api_key)
    harness = build_harness(webui)
    port = free_port()
    harness.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}", names
    finally:
        harness.demo.close()


def _pick(page, picker: str, option: str) -> None:  # type: ignore[no-untyped-def]
    page.click(f"{ACC}_{picker} input")
    page.click(f"{ACC}_{picker} ul.options li:has-text('{option}')")


def test_picking_a_lora_and_an_embedding_fills_the_prompt(browser, picker_page) -> None:  # type: ignore[no-untyped-def]
    url, names = picker_page
    lora, embedding = f"<lora:{names['lora'][:-12]}:1>", names["embedding"][:-12]
    page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.click(f"{ACC}_accordion .label-wrap")
    page.fill("#txt2img_prompt textarea", "a fox")
    page.click(f"{ACC}_refresh")
    _pick(page, "lora", lora)
    page.wait_for_function(f"() => document.querySelector('#txt2img_prompt textarea').value.includes('{lora}')")
    _pick(page, "embedding", embedding)
    page.wait_for_function(
        f"() => document.querySelector('#txt2img_prompt textarea').value.endsWith(', {embedding}')")
    assert page.input_value("#txt2img_prompt textarea") == f"a fox, {lora}, {embedding}"
    _pick(page, "vae", names["vae"])
    assert page.input_value(f"{ACC}_vae input") == names["vae"]
