"""The `serve` entry command as a real process, on the tiny model, over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import threading
import time

import pytest
import requests
from PIL import Image

from tools.local_processes import REPO, Service, free_port

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
def blobs(tmp_path_factory):
    """The container's output store (file://), where markers and results live."""
    return tmp_path_factory.mktemp("blobs")


@pytest.fixture(scope="module")
def container(tiny_checkpoint, tmp_path_factory, blobs):
    data = tmp_path_factory.mktemp("container")
    port = free_port()
    # The shell entry SageMaker runs (`serve`), on the port SageMaker names for multi-container endpoints.
    service = Service(
        "container", [str(REPO / "inference_container" / "serve"), "--preload", str(tiny_checkpoint)],
        f"http://127.0.0.1:{port}/ping", data / "container.log",
        env={"SAGEMAKER_BIND_TO_PORT": str(port), "SDCLOUD_HOST": "127.0.0.1",
             "SDCLOUD_MODEL_CACHE_DIR": str(data / "cache"), "SDCLOUD_TORCH_THREADS": "1",
             "SDCLOUD_ENGINE_CACHE_DIR": str(data / "engine"), "SDCLOUD_OUTPUT_STORE": blobs.as_uri(),
             "SDCLOUD_MARKER_POLL_S": "0.1",
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
    assert "does not match the reference sha256" in response.json()["detail"]
    assert requests.post(f"{container}/invocations", json=_job(tiny_checkpoint), timeout=120).status_code == 200


def test_train_entry_fails_with_a_reason_under_the_training_contract(tmp_path):
    result = subprocess.run([str(REPO / "inference_container" / "train")], capture_output=True, text=True,
                            env={**os.environ, "SM_PREFIX": str(tmp_path),
                                 "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"},
                            cwd=REPO, timeout=60)
    assert result.returncode != 0
    assert "not available" in (tmp_path / "output" / "failure").read_text()


def test_a_model_outside_the_model_roots_is_refused(container, tiny_checkpoint, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(tiny_checkpoint.read_bytes())
    job = _job(outside)
    job["models"]["checkpoint"]["sha256"] = "0" * 64
    response = requests.post(f"{container}/invocations", json=job, timeout=60)
    assert response.status_code == 422 and "outside" in response.json()["detail"]
    assert str(outside.stat().st_size) not in response.text


def test_deep_json_and_lone_surrogates_are_400s(container, tiny_checkpoint):
    deep = b'{"id": "deep", "payload": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = requests.post(f"{container}/invocations", data=deep, timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "1001 levels deep" in response.json()["detail"]
    job = json.dumps(_job(tiny_checkpoint, "sur")).replace("a lighthouse", "a \\ud800 lighthouse")
    response = requests.post(f"{container}/invocations", data=job.encode(), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["field"] == "payload.prompt"


# --- interrupt --------------------------------------------------------------------------------------


def _progress(url: str, job_id: str) -> dict:
    return requests.get(f"{url}/progress", params={"job_id": job_id}, timeout=5).json()


def _wait_for_step(url: str, job_id: str, step: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/progress", params={"job_id": job_id}, timeout=5)
        if response.status_code == 200:
            body = response.json()
            if body["phase"] == "sampling" and body["step"] >= step:
                return body
            assert body["phase"] not in ("done", "failed", "interrupted"), body
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached step {step}")


class _Post:
    def __init__(self, url: str, job: dict) -> None:
        self.response: requests.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(url, job), daemon=True)
        self._thread.start()

    def _run(self, url: str, job: dict) -> None:
        self.response = requests.post(f"{url}/invocations", json=job, timeout=300)

    def result(self) -> requests.Response:
        self._thread.join(300)
        assert self.response is not None
        return self.response


def test_interrupt_stops_sampling_within_a_step_returns_the_partial_image_and_the_next_job_runs(
        container, tiny_checkpoint):
    # The tiny model samples a step in milliseconds: twenty batch iterations keep it busy for seconds.
    long_job = _job(tiny_checkpoint, "long", steps=40, n_iter=20)
    running = _Post(container, long_job)
    at = _wait_for_step(container, "long", 5)
    assert (at["n_iter"], at["steps"]) == (20, 800) and at["iteration"] == at["step"] // 40
    queued = _Post(container, _job(tiny_checkpoint, "after"))
    deadline = time.monotonic() + 30
    while requests.get(f"{container}/progress", timeout=5).json()["queue_depth"] < 1:
        assert time.monotonic() < deadline, "the second job never queued"
        time.sleep(0.01)

    accepted = requests.post(f"{container}/jobs/long/interrupt", timeout=5)
    assert accepted.status_code == 202 and accepted.json()["state"] == "running"
    stopped_at = _progress(container, "long")
    step_at_interrupt = stopped_at["step"]

    response = running.result()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interrupted"] is True
    final = _progress(container, "long")
    assert final["phase"] == "interrupted"
    assert final["step"] <= step_at_interrupt + 1, (step_at_interrupt, final)
    assert final["step"] < 800
    # every finished iteration's image, then the interrupted one, decoded as far as it was sampled
    assert len(body["images"]) == final["iteration"] + 1 >= stopped_at["iteration"] + 1
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][-1])))
    info = json.loads(body["info"])
    assert image.info["parameters"] == info["infotexts"][-1] and "Steps: 40" in info["infotexts"][-1]

    after = queued.result()
    assert after.status_code == 200 and after.json()["interrupted"] is False
    assert len(after.json()["images"]) == 1


def test_a_cancel_marker_stops_a_job_and_result_json_matches_the_answer(container, tiny_checkpoint, blobs):
    job = _job(tiny_checkpoint, "marked", steps=40, n_iter=20)
    job["output"] = {"prefix": "jobs/marked/"}
    running = _Post(container, job)
    _wait_for_step(container, "marked", 3)
    (blobs / "jobs" / "marked").mkdir(parents=True, exist_ok=True)
    (blobs / "jobs" / "marked" / "cancel").write_text(json.dumps({"action": "interrupt"}))
    body = running.result().json()
    assert body["interrupted"] is True
    final = _progress(container, "marked")
    assert final["step"] < 800, (final, len(body["output"]["images"]))
    assert json.loads((blobs / "jobs" / "marked" / "result.json").read_text()) == body
    for entry in body["output"]["images"]:
        assert (blobs / entry["key"]).is_file()
