"""LocalCompute against the fake container over real HTTP on 127.0.0.1.

Most tests share one blob folder between the middleware and the fake container, as local mode
does (SDCLOUD_OUTPUT_STORE=file://<blob folder>): the container writes images and result.json,
the middleware reads them. ``world`` (memory blobs, a container with no output store) covers the
fallback for a container that answers with inline images.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

import pytest

from middleware.adapters.fs_blobs import FolderBlobStore
from middleware.adapters.local_compute import LocalCompute
from middleware.domain.job import JobStatus
from middleware.services.inferences import InferenceService
from middleware.services.job_events import JobEventHandler
from tests.fakes.fake_container import FakeContainer

CKPT = "tiny-sd15.safetensors"


class Waiter:
    """Block until a job is terminal, woken by the notifier's records (no fixed sleeps)."""

    def __init__(self, world):
        self.world = world

    def terminal(self, job_id: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.world.store.get(job_id)
            if job.is_terminal:
                return job
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} still {self.world.store.get(job_id).status.value}")


@pytest.fixture
def shared(world, tmp_path):
    """The unit world, but with a blob folder the fake container writes into."""
    blobs = FolderBlobStore(tmp_path / "blobs", b"s" * 32)
    events = JobEventHandler(world.store, blobs, world.notifier, heartbeat_interval_s=2.0)
    inferences = InferenceService(
        world.store, blobs, world.catalog, world.compute, world.notifier, events, endpoint_names=("local",)
    )
    return replace(world, blobs=blobs, events=events, inferences=inferences)


@pytest.fixture
def fake(shared):
    with FakeContainer(output_dir=str(shared.blobs.root)) as container:
        yield container


@pytest.fixture
def inline_fake():
    """A container without an output store: it answers with base64 images, A1111's way."""
    with FakeContainer() as container:
        yield container


def make_compute(world, url, **kw):
    options = {"poll_interval_s": 0.02, "connect_retries": 2, "retry_backoff_s": 0.01, **kw}
    compute = LocalCompute(url, world.blobs, world.events, **options)
    compute.start()
    world.inferences._compute = compute  # the service under test submits to the real adapter
    return compute


def submit(world, payload=None):
    return world.inferences.submit(world.ann, "txt2img", payload or {"prompt": "cat"}, CKPT, None, None)[0]


def test_the_container_reads_request_json_and_writes_images_and_result_json(shared, fake):
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared, {"prompt": "cat", "batch_size": 2, "steps": 5})
        done = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED, done.error
    request = json.loads(shared.blobs.get_bytes(f"jobs/{job.id}/request.json"))
    assert fake.invocations == [request] and request["output"] == {"prefix": f"jobs/{job.id}/"}
    for n in range(2):
        assert shared.blobs.get_bytes(f"jobs/{job.id}/images/{n}.png").startswith(b"\x89PNG")
    result = json.loads(shared.blobs.get_bytes(f"jobs/{job.id}/result.json"))
    assert result["interrupted"] is False
    assert [i["key"] for i in done.result["images"]] == [f"jobs/{job.id}/images/{n}.png" for n in range(2)]
    assert len(done.result["infotexts"]) == 2 and "Steps: 5" in done.result["infotexts"][0]


def test_a_container_answering_inline_images_still_completes_the_job(world, inline_fake):
    compute = make_compute(world, inline_fake.url)
    try:
        job = submit(world, {"prompt": "cat", "batch_size": 2, "steps": 5})
        done = Waiter(world).terminal(job.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED, done.error
    for n in range(2):
        assert world.blobs.get_bytes(f"jobs/{job.id}/images/{n}.png").startswith(b"\x89PNG")
    result = json.loads(world.blobs.get_bytes(f"jobs/{job.id}/result.json"))
    assert [i["key"] for i in result["output"]["images"]] == [f"jobs/{job.id}/images/{n}.png" for n in range(2)]
    assert len(done.result["infotexts"]) == 2


def test_a_missing_request_fails_the_job_with_the_reason(shared, fake):
    job = submit(shared)  # through the unit world's FakeCompute: nothing runs it yet
    shared.blobs.delete(f"jobs/{job.id}/request.json")
    compute = make_compute(shared, fake.url)
    try:
        compute.submit(job.id, f"jobs/{job.id}/request.json")
        failed = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED and failed.error.code == "request_missing"
    assert fake.invocations == []


def test_progress_is_relayed_while_the_container_works(shared, fake):
    fake.configure(delay_s=0.6)
    compute = make_compute(shared, fake.url)
    seen = []
    try:
        job = submit(shared, {"prompt": "cat", "steps": 10})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not shared.store.get(job.id).is_terminal:
            progress = shared.store.get(job.id).progress
            if progress.phase == "sampling":
                seen.append(progress.step)
            time.sleep(0.01)
    finally:
        compute.stop()
    assert shared.store.get(job.id).status is JobStatus.SUCCEEDED
    assert seen and max(seen) > 0 and seen == sorted(seen)


def test_container_error_fails_the_job_with_its_detail_and_field(shared, fake):
    fake.fail_with(400, "width must be a multiple of 8 (got 500)", field="payload.width")
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared)
        failed = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "invalid_request"
    assert failed.error.message == "width must be a multiple of 8 (got 500) (field payload.width)"


def test_server_error_without_json_still_says_what_happened(shared, fake):
    fake.fail_with(507, "CUDA out of memory; lower the size", code="out_of_memory")
    compute = make_compute(shared, fake.url)
    try:
        failed = Waiter(shared).terminal(submit(shared).id)
    finally:
        compute.stop()
    assert failed.error.code == "out_of_memory" and "out of memory" in failed.error.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_container_is_retried_then_fails_with_a_clear_reason(shared):
    url = f"http://127.0.0.1:{_free_port()}"
    sleeps: list[float] = []
    compute = make_compute(shared, url, connect_retries=3, retry_backoff_s=0.001, sleep=sleeps.append)
    try:
        failed = Waiter(shared).terminal(submit(shared).id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED and failed.error.code == "container_unreachable"
    assert failed.error.message.startswith(f"inference container at {url} is not reachable: ")
    assert "refused" in failed.error.message.lower()
    assert sleeps == [0.001, 0.002, 0.004]  # three retries with backoff


def test_container_going_down_mid_job_fails_it(shared, fake):
    fake.configure(delay_s=5)
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared)
        deadline = time.monotonic() + 5
        while shared.store.get(job.id).status is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        fake.down()
        failed = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED and failed.error.code == "container_error"
    assert "dropped the connection" in failed.error.message


def test_busy_container_is_retried_until_it_accepts(shared, fake):
    fake.configure(busy_responses=2)
    compute = make_compute(shared, fake.url)
    try:
        done = Waiter(shared).terminal(submit(shared).id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED
    assert len(fake.invocations) == 3


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_cancel_of_a_running_job_ends_it_cancelled_with_the_images_sampled_so_far(shared, fake):
    fake.configure(delay_s=60)
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared, {"prompt": "cat", "batch_size": 2, "n_iter": 4, "steps": 10})
        wait_for(lambda: fake.state.progress["job_id"] == job.id and fake.state.progress["phase"] == "sampling")
        asked = shared.inferences.cancel(shared.ann, job.id)
        assert asked.status is JobStatus.RUNNING and asked.progress.phase == "cancelling"
        ended = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert ended.status is JobStatus.CANCELLED and ended.error is None
    # The first iteration's two images, cut short, came back through result.json.
    assert [i["key"] for i in ended.result["images"]] == [f"jobs/{job.id}/images/{n}.png" for n in range(2)]
    assert ended.result["interrupted"] and len(ended.result["infotexts"]) == 2
    assert json.loads(shared.blobs.get_bytes(f"jobs/{job.id}/cancel")) == {"action": "interrupt"}
    wait_for(lambda: fake.state.interrupts == [job.id])  # the endpoint was called too


def test_a_cancel_the_container_never_answers_ends_after_a_bounded_wait(shared, fake):
    fake.configure(delay_s=60, ignore_cancel=True)
    compute = make_compute(shared, fake.url, cancel_wait_s=0.2)
    try:
        job = submit(shared)
        wait_for(lambda: fake.state.progress["job_id"] == job.id)
        shared.inferences.cancel(shared.ann, job.id)
        ended = Waiter(shared).terminal(job.id)
        fake.configure(delay_s=0, ignore_cancel=False)
    finally:
        compute.stop()
    assert ended.status is JobStatus.CANCELLED and ended.error.code == "cancel_unanswered"
    assert "did not answer the cancel within 0.2 s" in ended.error.message


def test_a_job_cancelled_while_queued_here_never_reaches_the_container(shared, fake):
    fake.configure(delay_s=60)
    compute = make_compute(shared, fake.url)
    try:
        slow = submit(shared)
        wait_for(lambda: fake.state.progress["job_id"] == slow.id)
        queued = submit(shared)
        cancelled = shared.inferences.cancel(shared.ann, queued.id)
        assert cancelled.status is JobStatus.CANCELLED
        shared.inferences.cancel(shared.ann, slow.id)
        Waiter(shared).terminal(slow.id)
        nxt = submit(shared)
        fake.configure(delay_s=0)
        done = Waiter(shared).terminal(nxt.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED
    assert queued.id not in [d["id"] for d in fake.invocations]


def test_skip_ends_the_running_iteration_and_the_job_goes_on(shared, fake):
    fake.configure(delay_s=60)
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared, {"prompt": "cat", "n_iter": 2, "steps": 10})
        wait_for(lambda: shared.store.get(job.id).progress.phase == "sampling")
        shared.inferences.skip(shared.ann, job.id)
        wait_for(lambda: fake.state.progress["iteration"] == 1)
        fake.configure(delay_s=0)
        done = Waiter(shared).terminal(job.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED and len(done.result["images"]) == 2
    assert json.loads(shared.blobs.get_bytes(f"jobs/{job.id}/skip")) == {"iteration": 0}


def test_silent_container_records_no_heartbeat(shared, fake):
    fake.configure(silent=True)
    compute = make_compute(shared, fake.url)
    try:
        job = submit(shared)
        deadline = time.monotonic() + 5
        while shared.store.get(job.id).status is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        started = shared.store.get(job.id).heartbeat_at
        time.sleep(0.2)  # ten poll intervals of silence
        assert shared.store.get(job.id).heartbeat_at == started
        fake.release()
        fake.configure(silent=False)
        Waiter(shared).terminal(job.id)
    finally:
        compute.stop()


def test_endpoints_report_the_container_state(shared, fake):
    compute = LocalCompute(fake.url, shared.blobs, shared.events)
    [state] = compute.endpoints()
    assert state.status == "InService" and state.name == "local"
    fake.configure(ready=False)
    [state] = compute.endpoints()
    assert state.status == "OutOfService" and "starting" in state.detail
    fake.down()
    [state] = compute.endpoints()
    assert state.status == "OutOfService" and "not reachable" in state.detail


def test_bad_container_url_is_refused(shared):
    with pytest.raises(ValueError, match="container URL"):
        LocalCompute("ftp://x", shared.blobs, shared.events)


def test_many_jobs_all_finish(shared, fake):
    compute = make_compute(shared, fake.url, workers=2)
    try:
        jobs = [submit(shared) for _ in range(20)]
        finished = [Waiter(shared).terminal(j.id) for j in jobs]
    finally:
        compute.stop()
    assert all(j.status is JobStatus.SUCCEEDED for j in finished)
    assert threading.active_count() < 50


def test_live_previews_are_kept_in_the_blob_store_and_named_in_the_progress(shared, fake):
    fake.configure(delay_s=0.6)
    compute = make_compute(shared, fake.url)
    steps_seen = []
    try:
        job = submit(shared, {"prompt": "cat", "steps": 10})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not shared.store.get(job.id).is_terminal:
            progress = shared.store.get(job.id).progress
            if progress.preview_step:
                steps_seen.append(progress.preview_step)
            time.sleep(0.01)
    finally:
        compute.stop()
    assert steps_seen and steps_seen == sorted(steps_seen)
    jpeg = shared.blobs.get_bytes(f"jobs/{job.id}/preview.jpg")
    assert jpeg[:2] == b"\xff\xd8"  # a JPEG
