"""The `serve` entry command as a real process, on the tiny model, over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess

import pytest
import requests
from PIL import Image

from tools.localstack import REPO, Service, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _ref(path) -> dict:
    data = path.read_bytes()
    return {"name": path.name, "uri": path.resolve().as_uri(), "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data)}


def _job(checkpoint, job_id="job-1", **payload) -> dict:
    base = {"prompt": "a lighthouse at dusk, (oil painting:1.2)", "negative_prompt": "blurry", "steps": 4,
            "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler a", "cfg_scale": 6.5}
    base.update(payload)
    return {"id": job_id, "task": "txt2img", "payload": base, "models": {"checkpoint": _ref(checkpoint)}}


@pytest.fixture(scope="module")
def container(tiny_checkpoint, tmp_path_factory):
    data = tmp_path_factory.mktemp("container")
    port = free_port()
    # The shell entry SageMaker runs (`serve`), on the port SageMaker names for multi-container endpoints.
    service = Service(
        "container", [str(REPO / "inference_container" / "serve"), "--preload", str(tiny_checkpoint)],
        f"http://127.0.0.1:{port}/ping", data / "container.log",
        env={"SAGEMAKER_BIND_TO_PORT": str(port), "SDCLOUD_HOST": "127.0.0.1",
             "SDCLOUD_MODEL_CACHE_DIR": str(data / "cache"), "SDCLOUD_TORCH_THREADS": "1",
             "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"},
    ).start()
    try:
        service.wait_ready(180)
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def test_txt2img_returns_a1111_shape_with_infotext_in_png(container, tiny_checkpoint):
    response = requests.post(f"{container}/invocations", json=_job(tiny_checkpoint, batch_size=2), timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["images"]) == 2
    info = json.loads(body["info"])
    assert info["all_seeds"] == [1234, 1235]
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert image.size == (64, 64)
    parameters = image.info["parameters"]
    assert parameters.startswith("a lighthouse at dusk, (oil painting:1.2)\nNegative prompt: blurry\n")
    assert "Steps: 4, Sampler: Euler a" in parameters and "Seed: 1234" in parameters
    assert parameters == info["infotexts"][0]
    assert body["parameters"]["steps"] == 4


def test_same_seed_gives_identical_pixels(container, tiny_checkpoint):
    first = requests.post(f"{container}/invocations", json=_job(tiny_checkpoint, "a"), timeout=120).json()
    second = requests.post(f"{container}/invocations", json=_job(tiny_checkpoint, "b"), timeout=120).json()
    other = requests.post(f"{container}/invocations", json=_job(tiny_checkpoint, "c", seed=99), timeout=120).json()

    def pixels(body):
        return Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).tobytes()

    assert pixels(first) == pixels(second)
    assert pixels(first) != pixels(other)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payload": {"width": 65}}, "payload.width"),
        ({"payload": {"sampler_name": "Euler z"}}, "payload.sampler_name"),
        ({"payload": {"no_such_field": 1}}, "payload.no_such_field"),
        ({"task": "upscale"}, "task"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(container, tiny_checkpoint, change, field):
    job = _job(tiny_checkpoint)
    for key, value in change.items():
        if isinstance(value, dict):
            job[key].update(value)
        else:
            job[key] = value
    response = requests.post(f"{container}/invocations", json=job, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert requests.get(f"{container}/ping", timeout=2).status_code == 200


def test_hash_mismatch_is_refused_and_the_next_job_runs(container, tiny_checkpoint):
    job = _job(tiny_checkpoint)
    job["models"]["checkpoint"]["sha256"] = "0" * 64
    job["models"]["checkpoint"]["name"] = "tampered.safetensors"
    response = requests.post(f"{container}/invocations", json=job, timeout=60)
    assert response.status_code == 422
    assert "sha256" in response.json()["detail"]
    assert requests.post(f"{container}/invocations", json=_job(tiny_checkpoint), timeout=120).status_code == 200


def test_train_entry_fails_with_a_reason_under_the_training_contract(tmp_path):
    result = subprocess.run([str(REPO / "inference_container" / "train")], capture_output=True, text=True,
                            env={**os.environ, "SM_PREFIX": str(tmp_path),
                                 "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"},
                            cwd=REPO, timeout=60)
    assert result.returncode != 0
    assert "not available" in (tmp_path / "output" / "failure").read_text()
