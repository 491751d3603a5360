import json

from middleware.domain.job import JobStatus, Progress

CKPT = "tiny-sd15.safetensors"


def new_job(world):
    job, _ = world.inferences.submit(world.ann, "txt2img", {"prompt": "cat"}, CKPT, None, None)
    return job


def write_result(world, job_id, images=2, info=None):
    keys = [f"jobs/{job_id}/images/{n}.png" for n in range(images)]
    for key in keys:
        world.blobs.put_bytes(key, b"png")
    info = info if info is not None else json.dumps({"infotexts": [f"cat\nSeed: {n}" for n in range(images)]})
    result = {
        "id": job_id,
        "output": {"images": [{"key": k} for k in keys]},
        "parameters": {"x": 1},
        "info": info,
    }
    world.blobs.put_bytes(f"jobs/{job_id}/result.json", json.dumps(result).encode())
    return f"jobs/{job_id}/result.json"


def test_started_moves_queued_to_running_once(world):
    job = new_job(world)
    assert world.events.job_started(job.id)
    running = world.store.get(job.id)
    assert running.status is JobStatus.RUNNING and running.progress.phase == "starting"
    assert not world.events.job_started(job.id)  # already running: no second start
    world.inferences.cancel(world.ann, job.id)
    assert not world.events.job_started(job.id)


def test_progress_changes_bump_the_version_and_repeats_do_not(world):
    job = new_job(world)
    world.events.job_started(job.id)
    v = world.store.get(job.id).version
    world.events.job_progress(job.id, Progress("sampling", 1, 10, 0.1))
    world.events.job_progress(job.id, Progress("sampling", 1, 10, 0.1))
    assert world.store.get(job.id).version == v + 1
    world.events.job_progress(job.id, Progress("sampling", 2, 10, 0.2))
    after = world.store.get(job.id)
    assert after.version == v + 2 and after.progress.step == 2
    assert world.notifier.notified.count(job.id) >= 3


def test_heartbeat_refreshes_without_a_new_version(world):
    clock = [1_000_000_000]
    from middleware.services.job_events import JobEventHandler

    events = JobEventHandler(
        world.store, world.blobs, world.notifier, heartbeat_interval_s=1, clock_us=lambda: clock[0]
    )
    job = new_job(world)
    events.job_started(job.id)
    before = world.store.get(job.id)
    clock[0] += 5_000_000
    events.job_heartbeat(job.id)
    after = world.store.get(job.id)
    assert after.version == before.version and after.heartbeat_at == clock[0]
    # Within the interval a second heartbeat writes nothing.
    clock[0] += 100
    events.job_heartbeat(job.id)
    assert world.store.get(job.id).heartbeat_at == clock[0] - 100


def test_success_reads_the_result_document(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.events.job_progress(job.id, Progress("sampling", 5, 20, 0.25))
    world.events.job_succeeded(job.id, write_result(world, job.id))
    done = world.store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.progress == Progress("done", 20, 20, 1.0)
    assert done.result["images"] == [
        {"index": 0, "key": f"jobs/{job.id}/images/0.png"},
        {"index": 1, "key": f"jobs/{job.id}/images/1.png"},
    ]
    assert done.result["infotexts"] == ["cat\nSeed: 0", "cat\nSeed: 1"]
    assert done.result["parameters"] == {"x": 1}


def test_success_for_a_queued_job_passes_through_running(world):
    job = new_job(world)
    world.events.job_succeeded(job.id, write_result(world, job.id, images=1))
    done = world.store.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.version == job.version + 2


def test_late_and_duplicate_reports_never_move_a_terminal_job(world):
    job = new_job(world)
    world.events.job_started(job.id)
    key = write_result(world, job.id, images=1)
    world.events.job_succeeded(job.id, key)
    done = world.store.get(job.id)
    world.events.job_succeeded(job.id, key)
    world.events.job_failed(job.id, "late", "too late")
    world.events.job_progress(job.id, Progress("sampling", 1, 2, 0.5))
    world.events.job_heartbeat(job.id)
    assert world.store.get(job.id) == done


def test_failure_keeps_the_message_and_last_progress(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.events.job_progress(job.id, Progress("sampling", 3, 10, 0.3))
    world.events.job_failed(job.id, "invalid_request", "width must be a multiple of 8 (got 500)")
    failed = world.store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "invalid_request" and "multiple of 8" in failed.error.message
    assert failed.progress == Progress("failed", 3, 10, 0.3)


def test_unreadable_result_fails_the_job_with_the_reason(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.events.job_succeeded(job.id, f"jobs/{job.id}/result.json")
    failed = world.store.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.error.code == "bad_result"


def test_reports_for_unknown_jobs_are_ignored(world):
    world.events.job_failed("nope", "x", "y")
    world.events.job_progress("nope", Progress("sampling"))
    assert not world.events.job_started("nope")
    assert world.notifier.notified == []


def write_interrupted(world, job_id, images=1):
    key = write_result(world, job_id, images=images)
    document = json.loads(world.blobs.get_bytes(key))
    world.blobs.put_bytes(key, json.dumps({**document, "interrupted": True}).encode())
    return key


def test_an_interrupted_result_after_a_cancel_ends_it_cancelled_with_the_partial_images(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.events.job_progress(job.id, Progress("sampling", 3, 10, 0.3))
    world.inferences.cancel(world.ann, job.id)
    world.events.job_progress(job.id, Progress("sampling", 4, 10, 0.4))
    assert world.store.get(job.id).progress == Progress("cancelling", 4, 10, 0.4)
    world.events.job_succeeded(job.id, write_interrupted(world, job.id, images=2))
    ended = world.store.get(job.id)
    assert ended.status is JobStatus.CANCELLED and ended.error is None
    assert [img["key"] for img in ended.result["images"]] == [
        f"jobs/{job.id}/images/0.png",
        f"jobs/{job.id}/images/1.png",
    ]
    assert ended.result["interrupted"] and ended.result["infotexts"] == ["cat\nSeed: 0", "cat\nSeed: 1"]
    assert ended.progress.phase == "cancelled"


def test_a_complete_result_that_beat_the_cancel_is_a_success(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.inferences.cancel(world.ann, job.id)
    world.events.job_succeeded(job.id, write_result(world, job.id))
    assert world.store.get(job.id).status is JobStatus.SUCCEEDED


def test_an_interrupted_result_without_a_cancel_is_a_success(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.events.job_succeeded(job.id, write_interrupted(world, job.id))
    assert world.store.get(job.id).status is JobStatus.SUCCEEDED


def test_a_failure_after_a_cancel_ends_it_cancelled_with_the_reason(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.inferences.cancel(world.ann, job.id)
    world.events.job_failed(job.id, "container_error", "dropped the connection")
    ended = world.store.get(job.id)
    assert ended.status is JobStatus.CANCELLED and ended.error.code == "container_error"


def test_result_details_too_large_for_the_record_are_read_back_for_one_job(world):
    job = new_job(world)
    world.events.job_started(job.id)
    long_text = "a fox " * 5000
    info = json.dumps({"infotexts": [long_text, long_text]})
    world.events.job_succeeded(job.id, write_result(world, job.id, images=2, info=info))
    record = world.store.get(job.id)
    assert record.result["infotexts"] == [] and record.needs_result_detail
    shown = world.inferences.get(world.ann, job.id)
    assert shown.result["infotexts"] == [long_text, long_text] and shown.result["parameters"] == {"x": 1}
    assert shown.version == record.version and world.store.get(job.id) == record
