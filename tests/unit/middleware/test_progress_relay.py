"""The AWS progress relay over the in-memory ports: what the container publishes in the blob store
reaches the job record through JobEvents, once, and keeps alive jobs from being swept."""

from __future__ import annotations

import json

from middleware.domain.job import JobStatus, Progress
from middleware.services.job_events import JobEventHandler
from middleware.services.progress_relay import NoProgressRelay, ProgressRelay, progress_key
from middleware.services.sweeper import JobSweeper

CKPT = "tiny-sd15.safetensors"


def new_job(world):
    return world.inferences.submit(world.ann, "txt2img", {"prompt": "cat", "steps": 20}, CKPT, None, None)[0]


def publish(world, key_of: str, **fields) -> None:
    """What the container's ProgressPublisher writes for job ``key_of`` (GET /progress?job_id= shape)."""
    document = {
        "job_id": key_of, "phase": "sampling", "step": 0, "steps": 20, "fraction": 0.0,
        "preview_step": 0, "iteration": 0, "n_iter": 1, "queue_depth": 0,
    }
    document.update(fields)
    world.blobs.put_bytes(progress_key(key_of), json.dumps(document).encode(), "application/json")


def test_progress_key_is_under_the_jobs_output_prefix():
    assert progress_key("abc") == "jobs/abc/progress.json"


def test_nothing_published_leaves_the_job_alone(world):
    job = new_job(world)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    assert relay.relay(job) is job
    assert world.store.get(job.id).version == job.version


def test_a_job_still_in_the_containers_queue_stays_queued(world):
    job = new_job(world)
    publish(world, job.id, phase="queued", steps=0)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    assert relay.relay(job) is job
    assert world.store.get(job.id).status is JobStatus.QUEUED


def test_a_queued_job_the_container_runs_is_started_then_progressed(world):
    job = new_job(world)
    publish(world, job.id, step=5, fraction=0.25, preview_step=4)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    seen = relay.relay(job)
    assert seen.status is JobStatus.RUNNING
    assert seen.progress == Progress("sampling", 5, 20, 0.25, 0, 1, 4)
    assert seen == world.store.get(job.id)
    assert world.notifier.notified.count(job.id) >= 2  # started, then progressed


def test_reading_the_same_document_again_writes_nothing(world):
    job = new_job(world)
    publish(world, job.id, step=5, fraction=0.25)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    first = relay.relay(job)
    again = relay.relay(first)
    assert again is first
    assert world.store.get(job.id).version == first.version


def test_newer_progress_is_relayed_and_a_cancelling_job_stays_cancelling(world):
    job = new_job(world)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    publish(world, job.id, step=5, fraction=0.25)
    running = relay.relay(job)
    world.inferences.cancel(world.ann, job.id)
    cancelling = world.store.get(job.id)
    publish(world, job.id, step=6, fraction=0.3)
    later = relay.relay(cancelling)
    assert later.progress.step == 6 and later.progress.phase == "cancelling"
    assert later.version > running.version
    # The same document once more: the record already shows it (as "cancelling"), no new version.
    assert relay.relay(later) is later


def test_a_rewritten_document_with_a_newer_timestamp_is_a_heartbeat(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    relay = ProgressRelay(world.store, world.blobs, events)
    job = new_job(world)
    publish(world, job.id, phase="loading_model", steps=0, updated_at=10_000.0)
    loading = relay.relay(job)
    clock[0] += 60_000_000
    publish(world, job.id, phase="loading_model", steps=0, updated_at=10_050.0)
    alive = relay.relay(loading)
    assert alive.version == loading.version  # a heartbeat wakes nobody
    assert alive.heartbeat_at == clock[0]
    # An old timestamp (or none) proves nothing: no heartbeat.
    clock[0] += 60_000_000
    assert relay.relay(alive).heartbeat_at == alive.heartbeat_at


def test_foreign_broken_or_finished_input_is_ignored(world):
    relay = ProgressRelay(world.store, world.blobs, world.events)
    job = new_job(world)
    publish(world, job.id, job_id="someone-else")
    assert relay.relay(job) is job
    world.blobs.put_bytes(progress_key(job.id), b"{half a docu", "application/json")
    assert relay.relay(job) is job
    world.blobs.put_bytes(progress_key(job.id), b"[1, 2]", "application/json")
    assert relay.relay(job) is job
    world.inferences.cancel(world.ann, job.id)
    cancelled = world.store.get(job.id)
    publish(world, job.id, step=3)
    assert relay.relay(cancelled) is cancelled
    assert world.store.get(job.id).status is JobStatus.CANCELLED


def test_get_of_one_inference_relays(world):
    world.inferences._relay = ProgressRelay(world.store, world.blobs, world.events)  # noqa: SLF001 - wiring
    job = new_job(world)
    publish(world, job.id, step=7, fraction=0.35)
    seen = world.inferences.get(world.ann, job.id)
    assert seen.status is JobStatus.RUNNING and seen.progress.step == 7


def test_no_progress_relay_changes_nothing(world):
    job = new_job(world)
    publish(world, job.id, step=7)
    relay = NoProgressRelay()
    assert relay.relay(job) is job and relay.relay_queued() == 0
    assert world.inferences.get(world.ann, job.id).status is JobStatus.QUEUED


def test_the_sweeper_starts_queued_jobs_and_spares_jobs_whose_container_reports(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    relay = ProgressRelay(world.store, world.blobs, events)
    sweeper = JobSweeper(world.store, events, world.compute, silence_s=30, clock_us=lambda: clock[0], relay=relay)
    lively, silent, waiting = new_job(world), new_job(world), new_job(world)
    publish(world, lively.id, step=1)
    publish(world, silent.id, step=1)
    publish(world, waiting.id, phase="queued", steps=0)
    assert sweeper.sweep_once() == []
    assert world.store.get(lively.id).status is JobStatus.RUNNING  # started by the sweep's relay
    assert world.store.get(silent.id).status is JobStatus.RUNNING
    assert world.store.get(waiting.id).status is JobStatus.QUEUED
    clock[0] += 40_000_000
    publish(world, lively.id, step=9)  # this container went on; the other one went quiet
    assert sweeper.sweep_once() == [silent.id]
    assert world.store.get(lively.id).progress.step == 9
    assert world.store.get(silent.id).error.code == "worker_silent"
