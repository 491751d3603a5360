"""SDCloudClient against the REAL middleware process (local mode) in front of the fake container.

Skips, saying why, when the middleware or the backend Python is not available.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sdcloud import errors
from sdcloud.client import SDCloudClient
from sdcloud.records import Job
from tests.extension.support.stack import CHECKPOINT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SMALL = {
    "prompt": "a red fox",
    "negative_prompt": "blurry",
    "steps": 4,
    "width": 64,
    "height": 64,
    "seed": 77,
}


@pytest.fixture
def client(backend: Stack) -> SDCloudClient:
    backend.configure_container(delay_s=0.0, fail_status=None, busy_responses=0)
    return SDCloudClient(backend.api_url, backend.api_key)


def test_ping_and_me(client: SDCloudClient, backend: Stack) -> None:
    info = client.ping()
    user = client.me()

    assert info.status == "ok" and info.mode == "local" and info.version
    assert user.role == "admin"
    with pytest.raises(errors.AuthError) as caught:
        SDCloudClient(backend.api_url, "sdk_wrong_key").me()
    assert "sdk_wrong_key" not in str(caught.value)
    with pytest.raises(errors.AuthError):
        SDCloudClient(backend.api_url, "").list_endpoints()


def test_catalog_lists_the_checkpoint_and_endpoint(client: SDCloudClient) -> None:
    models = client.list_models()
    endpoints = client.list_endpoints()

    assert CHECKPOINT in [m.name for m in models]
    model = next(m for m in models if m.name == CHECKPOINT)
    assert len(model.sha256) == 64 and model.size > 0
    assert any(e.name == "local" for e in endpoints)


def test_generate_follow_progress_and_download(client: SDCloudClient, backend: Stack, tmp_path: Path) -> None:
    backend.configure_container(delay_s=1.0)
    submitted = client.submit_inference("txt2img", dict(SMALL, batch_size=2), CHECKPOINT, endpoint="local")
    seen: list[Job] = []

    job = client.wait_for(submitted.id, timeout=120, on_progress=seen.append)

    assert submitted.status == "queued"
    assert job.status == "succeeded" and len(job.images) == 2
    versions = [j.version for j in seen]
    assert versions == sorted(set(versions)), "each report is a new version"
    assert any(j.progress.phase == "sampling" for j in seen)
    assert job.result is not None
    assert len(job.result.infotexts) == 2 and "Steps: 4" in job.result.infotexts[0]
    path = client.download_image(job.images[1], tmp_path)
    assert path.read_bytes() == client.fetch_image_bytes(job.images[1])
    assert client.fetch_image(job.images[1]).info["parameters"] == job.result.infotexts[1]
    assert job.result.seed(0) == 77


def test_same_idempotency_key_returns_the_same_job(client: SDCloudClient) -> None:
    key = uuid.uuid4().hex

    first = client.submit_inference("txt2img", SMALL, CHECKPOINT, idempotency_key=key)
    again = client.submit_inference("txt2img", SMALL, CHECKPOINT, idempotency_key=key)
    other = client.submit_inference("txt2img", SMALL, CHECKPOINT)

    assert again.id == first.id and other.id != first.id
    client.wait_for(first.id, timeout=120)
    client.wait_for(other.id, timeout=120)


@pytest.mark.parametrize(
    ("payload", "checkpoint", "field"),
    [
        (dict(SMALL, width=500), CHECKPOINT, "payload.width"),
        (dict(SMALL, sampler_name="Foo"), CHECKPOINT, "payload.sampler_name"),
        (SMALL, "missing.safetensors", "checkpoint"),
    ],
)
def test_invalid_requests_name_the_field(
    client: SDCloudClient, payload: dict, checkpoint: str, field: str
) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        client.submit_inference("txt2img", payload, checkpoint)

    assert field in caught.value.fields
    assert caught.value.status == 400


def test_too_large_body_is_413(client: SDCloudClient) -> None:
    with pytest.raises(errors.PayloadTooLarge, match="8 MiB"):
        client.submit_inference("txt2img", dict(SMALL, prompt="a" * (9 * 1024 * 1024)), CHECKPOINT)


def test_unknown_job_is_not_found(client: SDCloudClient) -> None:
    with pytest.raises(errors.NotFound):
        client.get_inference("no-such-job")


def test_container_failure_becomes_job_failed(client: SDCloudClient, backend: Stack) -> None:
    backend.configure_container(
        fail_status=400, fail_detail="height too large for this GPU", fail_field="payload.height"
    )
    try:
        job = client.submit_inference("txt2img", SMALL, CHECKPOINT)
        with pytest.raises(errors.JobFailed) as caught:
            client.wait_for(job.id, timeout=120)
    finally:
        backend.configure_container(fail_status=None)

    assert caught.value.job.status == "failed"
    assert "height too large" in str(caught.value)


def test_cancel_then_cancel_again_conflicts(client: SDCloudClient, backend: Stack) -> None:
    backend.configure_container(delay_s=3.0)
    job = client.submit_inference("txt2img", SMALL, CHECKPOINT)

    cancelling = client.cancel_inference(job.id)

    # A running job stays running until the container hands back what it sampled.
    assert cancelling.status in ("running", "cancelled")
    with pytest.raises(errors.JobCancelled):
        client.wait_for(job.id, timeout=60)
    with pytest.raises(errors.Conflict):
        client.cancel_inference(job.id)


def test_history_is_newest_first_and_paginates(client: SDCloudClient) -> None:
    ids = [client.submit_inference("txt2img", SMALL, CHECKPOINT).id for _ in range(3)]
    for job_id in ids:
        client.wait_for(job_id, timeout=120)

    page = client.list_inferences(limit=2)
    listed = [j.id for j in client.iter_inferences(page_size=2)]

    assert len(page.items) == 2 and page.next_cursor
    assert [page.items[0].id, page.items[1].id] == [ids[2], ids[1]]
    positions = [listed.index(i) for i in ids]
    assert positions == sorted(positions, reverse=True)
    assert len(listed) == len(set(listed))
