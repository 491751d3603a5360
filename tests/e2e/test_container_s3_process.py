"""The `serve` process in AWS mode against a real moto_server: the model comes by s3:// URI, the
images, result.json and progress.json go to the bucket, and a cancel marker put with boto3 stops it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import uuid

import pytest
import requests
from PIL import Image

from tests.support import moto_server as moto
from tools.local_processes import REPO, Service, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def moto_url():
    yield from moto.serve_or_skip("AWS mode")


@pytest.fixture(scope="module")
def s3(moto_url):
    import boto3
    from botocore.config import Config

    return boto3.Session(**moto.CREDENTIALS).client(
        "s3", endpoint_url=moto_url, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"sdcloud-e2e-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def model_ref(s3, bucket, tiny_checkpoint) -> dict:
    """The tiny checkpoint where the middleware puts models: content-addressed, by s3:// URI."""
    data = tiny_checkpoint.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    s3.put_object(Bucket=bucket, Key=f"models/{sha}", Body=data)
    return {"name": "tiny-sd15.safetensors", "uri": f"s3://{bucket}/models/{sha}", "sha256": sha, "size": len(data)}


@pytest.fixture(scope="module")
def container(moto_url, bucket, tmp_path_factory):
    data = tmp_path_factory.mktemp("container-s3")
    port = free_port()
    # No --preload: the only way to the model is the S3 fetcher.
    env = {"SAGEMAKER_BIND_TO_PORT": str(port), "SDCLOUD_HOST": "127.0.0.1",
           "SDCLOUD_MODEL_CACHE_DIR": str(data / "cache"), "SDCLOUD_TORCH_THREADS": "1",
           "SDCLOUD_ENGINE_CACHE_DIR": str(data / "engine"), "SDCLOUD_OUTPUT_STORE": f"s3://{bucket}",
           "SDCLOUD_S3_ENDPOINT_URL": moto_url, "SDCLOUD_MODEL_BUCKETS": bucket,
           "SDCLOUD_MARKER_POLL_S": "0.1", "SDCLOUD_PROGRESS_PUBLISH_S": "0.2",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": moto.REGION,
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    service = Service("container", [str(REPO / "inference_container" / "serve")],
                      f"http://127.0.0.1:{port}/ping", data / "container.log", env=env).start()
    try:
        service.wait_ready(180)
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def _job(ref: dict, job_id: str, **payload) -> dict:
    base = {"prompt": "a lighthouse at dusk", "steps": 4, "width": 64, "height": 64, "seed": 7,
            "sampler_name": "Euler a"}
    base.update(payload)
    return {"id": job_id, "task": "txt2img", "payload": base, "models": {"checkpoint": ref},
            "output": {"prefix": f"jobs/{job_id}/"}}


def _object(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def test_a_job_fetches_its_model_from_s3_and_writes_images_result_and_progress_there(
        container, s3, bucket, model_ref):
    response = requests.post(f"{container}/invocations", json=_job(model_ref, "s3-job", batch_size=2), timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    keys = [entry["key"] for entry in body["output"]["images"]]
    assert keys == ["jobs/s3-job/images/0.png", "jobs/s3-job/images/1.png"]
    assert json.loads(_object(s3, bucket, "jobs/s3-job/result.json")) == body
    image = Image.open(io.BytesIO(_object(s3, bucket, keys[0])))
    assert image.size == (64, 64)
    assert f"Model hash: {model_ref['sha256'][:10]}" in image.info["parameters"]
    progress = json.loads(_object(s3, bucket, "jobs/s3-job/progress.json"))
    assert (progress["job_id"], progress["phase"], progress["step"], progress["steps"]) == ("s3-job", "done", 4, 4)


def test_a_model_missing_from_s3_is_a_422_naming_the_object(container, model_ref, bucket):
    ref = {**model_ref, "uri": f"s3://{bucket}/models/{'b' * 64}", "sha256": "b" * 64}
    response = requests.post(f"{container}/invocations", json=_job(ref, "missing"), timeout=60)
    assert response.status_code == 422
    assert f"s3://{bucket}/models/{'b' * 64} does not exist" in response.json()["detail"]


def test_a_cancel_marker_put_with_boto3_stops_the_job_and_its_partial_images_land_in_s3(
        container, s3, bucket, model_ref):
    answer: dict = {}
    job = _job(model_ref, "s3-cancel", steps=40, n_iter=20)
    post = threading.Thread(target=lambda: answer.update(
        requests.post(f"{container}/invocations", json=job, timeout=300).json()))
    post.start()
    deadline = time.monotonic() + 120
    while True:  # watch the job the way the middleware does: through progress.json in the bucket
        raw = _object(s3, bucket, "jobs/s3-cancel/progress.json")
        seen = json.loads(raw) if raw else {}
        if seen.get("phase") == "sampling" and seen["step"] >= 3:
            break
        assert seen.get("phase") not in ("done", "failed"), seen
        assert time.monotonic() < deadline, f"the job never reached step 3 ({seen})"
        time.sleep(0.05)
    s3.put_object(Bucket=bucket, Key="jobs/s3-cancel/cancel", Body=b'{"action": "interrupt"}')
    post.join(300)
    assert answer["interrupted"] is True
    assert json.loads(_object(s3, bucket, "jobs/s3-cancel/result.json")) == answer
    keys = [entry["key"] for entry in answer["output"]["images"]]
    assert 1 <= len(keys) < 20
    for key in keys:
        assert _object(s3, bucket, key) is not None
    final = json.loads(_object(s3, bucket, "jobs/s3-cancel/progress.json"))
    assert final["phase"] == "interrupted" and final["step"] < 800
