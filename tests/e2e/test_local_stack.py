"""The three real processes on loopback: container (tiny model), middleware and UI."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from tools.local_processes import LocalStack

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


def _follow(stack, headers, job, until):
    while not until(job):
        job = requests.get(f"{stack.api_url}/v1/inferences/{job['id']}", headers=headers, timeout=40,
                           params={"wait": 20, "version": job["version"]}).json()
    return job


# Long enough on the CPU that a cancel or skip always lands while it samples (32 x 150 steps).
LONG = {"prompt": "a red fox in snow", "steps": 150, "n_iter": 32, "width": 64, "height": 64, "seed": 3}


def test_cancel_reaches_the_container_and_keeps_the_images_sampled_so_far(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    job = requests.post(f"{stack.api_url}/v1/inferences", headers=headers, timeout=10,
                        json={"task": "txt2img", "payload": LONG, "checkpoint": "tiny-sd15"}).json()
    job = _follow(stack, headers, job, lambda j: j["progress"]["phase"] == "sampling")
    asked = requests.delete(f"{stack.api_url}/v1/inferences/{job['id']}", headers=headers, timeout=10)
    assert asked.status_code == 200 and asked.json()["status"] == "running"
    assert asked.json()["progress"]["phase"] == "cancelling"
    ended = _follow(stack, headers, asked.json(), lambda j: j["status"] not in ("queued", "running"))
    assert ended["status"] == "cancelled", ended
    assert ended["error"] is None and 1 <= len(ended["result"]["images"]) < 32
    png = requests.get(ended["result"]["images"][0]["url"], timeout=10)
    assert Image.open(io.BytesIO(png.content)).info["parameters"] == ended["result"]["infotexts"][0]
    # The container wrote them into the middleware's blob folder, with the marker beside them.
    folder = stack.blob_dir / "jobs" / job["id"]
    assert json.loads((folder / "result.json").read_text())["interrupted"] is True
    assert (folder / "cancel").is_file()


def test_skip_ends_one_iteration_and_the_job_goes_on(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    payload = {**LONG, "n_iter": 2, "steps": 150}
    job = requests.post(f"{stack.api_url}/v1/inferences", headers=headers, timeout=10,
                        json={"task": "txt2img", "payload": payload, "checkpoint": "tiny-sd15"}).json()
    job = _follow(stack, headers, job, lambda j: j["progress"]["phase"] == "sampling")
    skipped = requests.post(f"{stack.api_url}/v1/inferences/{job['id']}/skip", headers=headers, timeout=10)
    assert skipped.status_code == 202, skipped.text
    job = _follow(stack, headers, job, lambda j: j["progress"].get("iteration") == 1 or j["status"] != "running")
    requests.delete(f"{stack.api_url}/v1/inferences/{job['id']}", headers=headers, timeout=10)
    ended = _follow(stack, headers, job, lambda j: j["status"] not in ("queued", "running"))
    # Iteration 0 was cut short by the skip, iteration 1 by the cancel: both images come back.
    assert ended["status"] == "cancelled", ended
    assert len(ended["result"]["images"]) == 2
    assert (stack.blob_dir / "jobs" / job["id"] / "skip").is_file()


def test_the_ui_is_served(stack):
    if "ui" not in stack.services:
        pytest.skip("the extension environment (.venv-a1111) is not built")
    page = requests.get(stack.ui_url, timeout=10)
    assert page.status_code == 200
    assert "gradio" in page.text.lower()
