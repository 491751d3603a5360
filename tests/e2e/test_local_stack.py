"""The three real processes on loopback: container (tiny model), middleware and UI."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from tools.localstack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tiny_checkpoint, tmp_path_factory, extension_env_available):
    models = tmp_path_factory.mktemp("stack-models")
    checkpoint = models / tiny_checkpoint.name
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    local = LocalStack(data_dir=tmp_path_factory.mktemp("stack-data"), checkpoint=checkpoint,
                       with_ui=extension_env_available, container_env={"SDCLOUD_TORCH_THREADS": "1"})
    with local:
        yield local


def test_generate_through_the_middleware_and_fetch_the_png(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    assert (stack.api_key_file.stat().st_mode & 0o777) == 0o600
    models = requests.get(f"{stack.api_url}/v1/models", headers=headers, timeout=10).json()["items"]
    assert [m["name"] for m in models] == ["tiny-sd15.safetensors"]
    payload = {"prompt": "a red fox in snow", "steps": 3, "width": 64, "height": 64, "seed": 7,
               "sampler_name": "DPM++ 2M", "scheduler": "karras"}
    submitted = requests.post(f"{stack.api_url}/v1/inferences", headers=headers, timeout=10,
                              json={"task": "txt2img", "payload": payload, "checkpoint": "tiny-sd15.safetensors"})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    while job["status"] in ("queued", "running"):
        job = requests.get(f"{stack.api_url}/v1/inferences/{job['id']}", headers=headers, timeout=40,
                           params={"wait": 20, "version": job["version"]}).json()
    assert job["status"] == "succeeded", job
    image_url = job["result"]["images"][0]["url"]
    png = requests.get(image_url, timeout=10)
    assert png.status_code == 200
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (64, 64)
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in image.info["parameters"]
    assert image.info["parameters"] == job["result"]["infotexts"][0]
    history = requests.get(f"{stack.api_url}/v1/inferences", headers=headers, timeout=10).json()["items"]
    assert history[0]["id"] == job["id"]


def test_the_ui_is_served(stack):
    if "ui" not in stack.services:
        pytest.skip("the extension environment (.venv-a1111) is not built")
    page = requests.get(stack.ui_url, timeout=10)
    assert page.status_code == 200
    assert "gradio" in page.text.lower()
