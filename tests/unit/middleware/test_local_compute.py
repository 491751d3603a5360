"""LocalCompute against the fake container over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from middleware.adapters.local_compute import LocalCompute
from middleware.domain.job import JobStatus
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
def fake():
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


def test_success_writes_request_images_and_result_then_completes(world, fake):
    compute = make_compute(world, fake.url)
    try:
        job = submit(world, {"prompt": "cat", "batch_size": 2, "steps": 5})
        done = Waiter(world).terminal(job.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED, done.error
    request = json.loads(world.blobs.get_bytes(f"jobs/{job.id}/request.json"))
    assert request == job.document() and "output" not in request
    assert [d["id"] for d in fake.invocations] == [job.id]
    for n in range(2):
        assert world.blobs.get_bytes(f"jobs/{job.id}/images/{n}.png").startswith(b"\x89PNG")
    result = json.loads(world.blobs.get_bytes(f"jobs/{job.id}/result.json"))
    assert [i["key"] for i in result["output"]["images"]] == [
        f"jobs/{job.id}/images/{n}.png" for n in range(2)
    ]
    assert len(done.result["infotexts"]) == 2 and "Steps: 5" in done.result["infotexts"][0]


def test_progress_is_relayed_while_the_container_works(world, fake):
    fake.configure(delay_s=0.6)
    compute = make_compute(world, fake.url)
    seen = []
    try:
        job = submit(world, {"prompt": "cat", "steps": 10})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not world.store.get(job.id).is_terminal:
            progress = world.store.get(job.id).progress
            if progress.phase == "sampling":
                seen.append(progress.step)
            time.sleep(0.01)
    finally:
        compute.stop()
    assert world.store.get(job.id).status is JobStatus.SUCCEEDED
    assert seen and max(seen) > 0 and seen == sorted(seen)


def test_container_error_fails_the_job_with_its_detail_and_field(world, fake):
    fake.fail_with(400, "width must be a multiple of 8 (got 500)", field="payload.width")
    compute = make_compute(world, fake.url)
    try:
        job = submit(world)
        failed = Waiter(world).terminal(job.id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "invalid_request"
    assert failed.error.message == "width must be a multiple of 8 (got 500) (field payload.width)"


def test_server_error_without_json_still_says_what_happened(world, fake):
    fake.fail_with(507, "CUDA out of memory; lower the size", code="out_of_memory")
    compute = make_compute(world, fake.url)
    try:
        failed = Waiter(world).terminal(submit(world).id)
    finally:
        compute.stop()
    assert failed.error.code == "out_of_memory" and "out of memory" in failed.error.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_container_is_retried_then_fails_with_a_clear_reason(world):
    url = f"http://127.0.0.1:{_free_port()}"
    sleeps: list[float] = []
    compute = make_compute(world, url, connect_retries=3, retry_backoff_s=0.001, sleep=sleeps.append)
    try:
        failed = Waiter(world).terminal(submit(world).id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED and failed.error.code == "container_unreachable"
    assert failed.error.message.startswith(f"inference container at {url} is not reachable: ")
    assert "refused" in failed.error.message.lower()
    assert sleeps == [0.001, 0.002, 0.004]  # three retries with backoff


def test_container_going_down_mid_job_fails_it(world, fake):
    fake.configure(delay_s=5)
    compute = make_compute(world, fake.url)
    try:
        job = submit(world)
        deadline = time.monotonic() + 5
        while world.store.get(job.id).status is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        fake.down()
        failed = Waiter(world).terminal(job.id)
    finally:
        compute.stop()
    assert failed.status is JobStatus.FAILED and failed.error.code == "container_error"
    assert "dropped the connection" in failed.error.message


def test_busy_container_is_retried_until_it_accepts(world, fake):
    fake.configure(busy_responses=2)
    compute = make_compute(world, fake.url)
    try:
        done = Waiter(world).terminal(submit(world).id)
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


def test_cancel_frees_the_worker_for_the_next_job(world, fake):
    fake.configure(delay_s=60)
    compute = make_compute(world, fake.url)
    try:
        slow = submit(world)
        wait_for(lambda: world.store.get(slow.id).status is JobStatus.RUNNING)
        queued = submit(world)
        world.inferences.cancel(world.ann, queued.id)  # cancelled while still queued here
        world.inferences.cancel(world.ann, slow.id)
        nxt = submit(world)
        # The only worker moved on although the container is still busy with the cancelled job.
        wait_for(lambda: world.store.get(nxt.id).status is JobStatus.RUNNING)
        assert fake.state.progress["job_id"] == slow.id
        fake.configure(delay_s=0)
        done = Waiter(world).terminal(nxt.id)
    finally:
        compute.stop()
    assert done.status is JobStatus.SUCCEEDED
    assert world.store.get(slow.id).status is JobStatus.CANCELLED
    assert queued.id not in [d["id"] for d in fake.invocations]


def test_silent_container_records_no_heartbeat(world, fake):
    fake.configure(silent=True)
    compute = make_compute(world, fake.url)
    try:
        job = submit(world)
        deadline = time.monotonic() + 5
        while world.store.get(job.id).status is not JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.01)
        started = world.store.get(job.id).heartbeat_at
        time.sleep(0.2)  # ten poll intervals of silence
        assert world.store.get(job.id).heartbeat_at == started
        fake.release()
        fake.configure(silent=False)
        Waiter(world).terminal(job.id)
    finally:
        compute.stop()


def test_endpoints_report_the_container_state(world, fake):
    compute = LocalCompute(fake.url, world.blobs, world.events)
    [state] = compute.endpoints()
    assert state.status == "InService" and state.name == "local"
    fake.configure(ready=False)
    [state] = compute.endpoints()
    assert state.status == "OutOfService" and "starting" in state.detail
    fake.down()
    [state] = compute.endpoints()
    assert state.status == "OutOfService" and "not reachable" in state.detail


def test_bad_container_url_is_refused(world):
    with pytest.raises(ValueError, match="container URL"):
        LocalCompute("ftp://x", world.blobs, world.events)


def test_many_jobs_all_finish(world, fake):
    compute = make_compute(world, fake.url, workers=2)
    try:
        jobs = [submit(world) for _ in range(20)]
        finished = [Waiter(world).terminal(j.id) for j in jobs]
    finally:
        compute.stop()
    assert all(j.status is JobStatus.SUCCEEDED for j in finished)
    assert threading.active_count() < 50
