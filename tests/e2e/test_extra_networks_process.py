"""LoRA, embedding and VAE references through the real `serve` process, on the tiny model.

One container, three jobs in a row on its one cached pipeline: with the networks, then without
(identical to a fresh plain job: nothing stayed behind), each answer's infotext as A1111 writes it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os

import numpy as np
import pytest
import requests
from PIL import Image

from inference_container.tiny_networks import write_tiny_embedding, write_tiny_lora, write_tiny_vae
from tools.local_processes import REPO, Service, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _ref(path) -> dict:
    data = path.read_bytes()
    return {"name": path.name, "uri": path.resolve().as_uri(), "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data)}


@pytest.fixture(scope="module")
def networks(tiny_checkpoint) -> dict:
    folder = tiny_checkpoint.parent  # the preload checkpoint's folder is a file:// model root
    return {"lora": _ref(write_tiny_lora(folder / "inkStyle.safetensors")),
            "embedding": _ref(write_tiny_embedding(folder / "charTurner.safetensors")),
            "vae": _ref(write_tiny_vae(folder / "kl-f8-tiny.safetensors"))}


@pytest.fixture(scope="module")
def container(tiny_checkpoint, tmp_path_factory):
    data = tmp_path_factory.mktemp("container")
    port = free_port()
    service = Service(
        "container", [str(REPO / "inference_container" / "serve"), "--preload", str(tiny_checkpoint)],
        f"http://127.0.0.1:{port}/ping", data / "container.log",
        env={"SAGEMAKER_BIND_TO_PORT": str(port), "SDCLOUD_HOST": "127.0.0.1",
             "SDCLOUD_MODEL_CACHE_DIR": str(data / "cache"), "SDCLOUD_TORCH_THREADS": "1",
             "SDCLOUD_ENGINE_CACHE_DIR": str(data / "engine"),
             "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"},
    ).start()
    try:
        service.wait_ready(180)
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def _generate(container, checkpoint, job_id, prompt, **models) -> tuple[np.ndarray, str]:
    job = {"id": job_id, "task": "txt2img", "models": {"checkpoint": _ref(checkpoint), **models},
           "payload": {"prompt": prompt, "steps": 3, "width": 64, "height": 64, "seed": 77, "cfg_scale": 5}}
    response = requests.post(f"{container}/invocations", json=job, timeout=180)
    assert response.status_code == 200, response.text
    body = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert image.info["parameters"] == json.loads(body["info"])["infotexts"][0]
    return np.asarray(image).astype(int), image.info["parameters"]


def test_networks_apply_for_their_job_only(container, tiny_checkpoint, networks):
    lora, emb, vae = networks["lora"], networks["embedding"], networks["vae"]
    plain, _ = _generate(container, tiny_checkpoint, "plain-1", "charTurner portrait")
    styled, text = _generate(container, tiny_checkpoint, "styled", "charTurner portrait <lora:inkStyle:0.9>",
                             loras=[lora], embeddings=[emb], vae=vae)
    assert np.abs(styled - plain).mean() > 1
    assert f'Lora hashes: "inkStyle: {lora["sha256"][:12]}"' in text
    assert f'TI hashes: "charTurner: {emb["sha256"][:12]}"' in text
    assert f"VAE hash: {vae['sha256'][:10]}, VAE: kl-f8-tiny.safetensors" in text
    again, again_text = _generate(container, tiny_checkpoint, "plain-2", "charTurner portrait")
    assert np.array_equal(again, plain) and "Lora hashes" not in again_text and "VAE" not in again_text


def test_a_tag_without_a_reference_is_refused_with_the_field(container, tiny_checkpoint):
    job = {"id": "bad", "task": "txt2img", "models": {"checkpoint": _ref(tiny_checkpoint)},
           "payload": {"prompt": "<lora:inkStyle:1>", "steps": 2, "width": 64, "height": 64}}
    response = requests.post(f"{container}/invocations", json=job, timeout=60)
    assert response.status_code == 400
    assert "payload.prompt" in response.text and "models.loras" in response.text
