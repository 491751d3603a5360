"""The Models page's handlers (sync, upload, own models), the accordion's library pickers and the
cloud VAE in the job, against a real HTTP server with the library's API shape."""

from __future__ import annotations

import hashlib
import html as html_lib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from sdcloud.client import SDCloudClient  # noqa: E402
from sdcloud.models.local_folders import webui_folders  # noqa: E402
from sdcloud.records import ModelInfo  # noqa: E402
from sdcloud.ui.accordion import lora_tag, network_name, picker_choices, prompt_with, refresh_pickers  # noqa: E402
from sdcloud.ui.generation import GenerateForm, build_payload  # noqa: E402
from sdcloud.ui.models_page import (  # noqa: E402
    change_model,
    list_models,
    own_model_choices,
    own_models,
    sync_models,
    upload_model,
)
from sdcloud.webui_job import CloudChoice, with_cloud_vae  # noqa: E402
from tests.extension.support.model_api_server import ModelApiServer  # noqa: E402

KEY = "sdk_TEST-page-key-0123456789abcdef"


def text_of(html: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", html)).strip()


def state_of(html: str) -> str:
    found = re.search(r'data-state="([a-z]+)"', html)
    return found.group(1) if found else ""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ModelApiServer]:
    srv = ModelApiServer(tmp_path / "server", part_size=8192, api_key=KEY).start()
    saved = os.environ.get("SDCLOUD_UI_SETTINGS")
    os.environ["SDCLOUD_UI_SETTINGS"] = str(tmp_path / "cfg" / "ui-settings.json")  # state + hash cache here
    try:
        yield srv
    finally:
        srv.stop()
        if saved is None:
            del os.environ["SDCLOUD_UI_SETTINGS"]
        else:
            os.environ["SDCLOUD_UI_SETTINGS"] = saved


def webui_tree(root: Path) -> None:
    for i, rel in enumerate(["models/Lora/ink.safetensors", "embeddings/bad-hands.pt", "models/VAE/clear.pt"]):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(str(i).encode()).digest() * 700)


def test_sync_from_a_typed_folder_reports_uploaded_then_skipped(api: ModelApiServer, tmp_path: Path) -> None:
    webui_tree(tmp_path / "webui")
    client = SDCloudClient(api.url, KEY)
    steps = list(sync_models(lambda: client, None, str(tmp_path / "webui"), [], False, every_s=0.001))
    status, report = steps[-1]
    assert state_of(status) == "done" and text_of(status).startswith("3 uploaded, 0 skipped")
    assert "uploaded  lora       ink.safetensors" in report
    assert all(state_of(s) == "running" for s, _ in steps[:-1])

    status, report = list(sync_models(lambda: client, None, str(tmp_path / "webui"), ["lora"], False))[-1]
    assert text_of(status).startswith("0 uploaded, 1 skipped") and "in the cloud as ink.safetensors" in report


def test_sync_in_the_webui_uses_the_hosts_folders_and_dry_run_sends_nothing(api: ModelApiServer, tmp_path: Path) -> None:
    webui_tree(tmp_path / "webui")
    client = SDCloudClient(api.url, KEY)
    status, report = list(sync_models(lambda: client, lambda: webui_folders(tmp_path / "webui"), "", [], True))[-1]
    assert text_of(status) == "3 to upload, 0 already in the cloud (nothing sent)" and api.bytes_received == 0
    assert "would upload embedding  bad-hands.pt" in report


def test_sync_without_a_folder_says_what_to_type(api: ModelApiServer) -> None:
    client = SDCloudClient(api.url, KEY)
    [(status, _)] = list(sync_models(lambda: client, None, "  ", [], False))
    assert state_of(status) == "error" and "Type the WebUI's folder" in text_of(status)


def test_upload_one_file_then_own_models_visibility_and_delete(api: ModelApiServer, tmp_path: Path) -> None:
    path = tmp_path / "style.safetensors"
    path.write_bytes(os.urandom(20000))
    client = SDCloudClient(api.url, KEY)
    last = list(upload_model(lambda: client, str(path), "lora", False, every_s=0.001))[-1]
    assert state_of(last) == "done" and text_of(last).startswith("Uploaded style.safetensors (lora): ")
    again = list(upload_model(lambda: client, str(path), "lora", False, name="copy.safetensors"))[-1]
    assert text_of(again).endswith("already in the cloud, nothing sent")

    choices, line = own_models(lambda: client)
    assert [label for label, _ in choices] == ["copy.safetensors (lora, private)", "style.safetensors (lora, private)"]
    model_id = choices[1][1]
    assert text_of(change_model(lambda: client, model_id, "public")) == "style.safetensors is now public"
    rows = list_models(lambda: client, "lora").rows or []
    assert [r[:2] for r in rows] == [["copy.safetensors", "lora"], ["style.safetensors", "lora"]]
    assert [label for label, _ in own_models(lambda: client)[0]][1] == "style.safetensors (lora, public)"
    assert text_of(change_model(lambda: client, model_id, "delete")) == "Model deleted"
    assert [label for label, _ in own_models(lambda: client)[0]] == ["copy.safetensors (lora, private)"]
    assert state_of(change_model(lambda: client, "", "delete")) == "error"


def test_upload_of_a_missing_file_says_so(api: ModelApiServer, tmp_path: Path) -> None:
    client = SDCloudClient(api.url, KEY)
    last = list(upload_model(lambda: client, str(tmp_path / "gone.pt"), "embedding", False))[-1]
    assert state_of(last) == "error" and "cannot read it" in text_of(last)
    assert state_of(list(upload_model(lambda: client, "", "lora", False))[-1]) == "error"


def test_own_models_leave_out_others_and_operator_checkpoints() -> None:
    models = [ModelInfo("mine.safetensors", "lora", 1, "a" * 64, id="1", owner="me", visibility="public"),
              ModelInfo("theirs.safetensors", "lora", 1, "b" * 64, id="2", owner="you", visibility="public"),
              ModelInfo("base.safetensors", "checkpoint", 1, "c" * 64, owner="operator")]
    assert own_model_choices(models, "me") == [("mine.safetensors (lora, public)", "1")]


# ---- the accordion's pickers --------------------------------------------------------------------


def test_picks_become_a1111_prompt_text() -> None:
    assert lora_tag("ink.safetensors") == "<lora:ink:1>" and lora_tag("v1.5-style.pt", 0.5) == "<lora:v1.5-style:0.5>"
    assert network_name("bad-hands.pt") == "bad-hands" and network_name("odd.name") == "odd.name"
    assert prompt_with("", "<lora:ink:1>") == "<lora:ink:1>"
    assert prompt_with("a fox", "<lora:ink:1>") == "a fox, <lora:ink:1>"
    assert prompt_with("a fox, ", "bad-hands") == "a fox, bad-hands"
    assert prompt_with("a fox <lora:ink:1>", "<lora:ink:1>") == "a fox <lora:ink:1>"


def test_pickers_list_the_cloud_library(api: ModelApiServer, tmp_path: Path) -> None:
    client = SDCloudClient(api.url, KEY)
    for name, type_ in (("ink.safetensors", "lora"), ("bad-hands.pt", "embedding"), ("clear.pt", "vae")):
        path = tmp_path / name
        path.write_bytes(name.encode() * 500)
        list(upload_model(lambda: client, str(path), type_, False))
    lora, embedding, vae = refresh_pickers(lambda: client, "gone.pt")
    assert lora["choices"] == ["<lora:ink:1>"] and embedding["choices"] == ["bad-hands"]
    assert vae["choices"] == ["Automatic", "clear.pt"] and vae["value"] == "Automatic"
    assert picker_choices([])[2] == ["Automatic"]


# ---- the cloud VAE in the job --------------------------------------------------------------------


def test_a_vae_pick_becomes_override_settings_sd_vae() -> None:
    _, payload = build_payload(GenerateForm(prompt="a fox", sd_vae="clear.pt"))
    assert payload["override_settings"] == {"sd_vae": "clear.pt"}
    _, payload = build_payload(GenerateForm(prompt="a fox", sd_vae="Automatic"))
    assert "override_settings" not in payload
    assert with_cloud_vae({"CLIP_stop_at_last_layers": 2}, "clear.pt") == {
        "CLIP_stop_at_last_layers": 2, "sd_vae": "clear.pt"}
    assert with_cloud_vae({"sd_vae": "api.pt"}, "Automatic") == {"sd_vae": "api.pt"}  # an API caller's own pick stays
    assert CloudChoice.from_args([True, "local", "base.safetensors", "clear.pt"]).vae == "clear.pt"
    assert CloudChoice.from_args([True, "local", "base.safetensors"]).vae == ""
