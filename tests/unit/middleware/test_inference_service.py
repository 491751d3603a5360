import asyncio
import hashlib
import json

import pytest

from middleware.domain.errors import Conflict, IdempotencyMismatch, InvalidInput, ModelUnavailable, NotFound
from middleware.domain.job import JobStatus, Progress

CKPT = "tiny-sd15.safetensors"


def submit(world, user=None, payload=None, key=None, **kw):
    return world.inferences.submit(
        user or world.ann,
        kw.pop("task", "txt2img"),
        {"prompt": "cat"} if payload is None else payload,
        kw.pop("checkpoint", CKPT),
        kw.pop("endpoint", None),
        key,
    )


def test_submit_writes_the_request_then_a_small_record_and_hands_its_key_to_compute(world):
    job, created = submit(world, payload={"prompt": "cat", "steps": 20})
    assert created and job.status is JobStatus.QUEUED and job.version == 1
    assert job.owner == "ann" and job.endpoint == "local" and job.checkpoint == CKPT
    model = world.catalog.get(CKPT)
    assert job.checkpoint_hash == model.sha256[:10]
    assert job.summary == {"prompt": "cat", "steps": 20}
    assert world.store.get(job.id) == job
    assert world.compute.submitted == [job.id]
    assert world.compute.request_keys == [f"jobs/{job.id}/request.json"]
    document = json.loads(world.blobs.get_bytes(f"jobs/{job.id}/request.json"))
    assert document == {
        "id": job.id,
        "task": "txt2img",
        "payload": {"prompt": "cat", "steps": 20},
        "models": {"checkpoint": model.ref(), "loras": [], "embeddings": []},
        "output": {"prefix": f"jobs/{job.id}/"},
    }


def test_a_failed_insert_leaves_no_orphaned_request(world):
    world.store.fail_create = RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        submit(world)
    assert world.blobs.keys() == [] and world.compute.submitted == []


def test_a_lost_idempotency_race_keeps_only_the_winners_request(world):
    first, _ = submit(world, key="k")
    # A retry that passed the cheap lookup before the first insert landed: its create answers
    # the existing job, and its own request file is removed again.
    world.store.find_by_idempotency_key = lambda owner, key: None
    again, created = submit(world, key="k")
    assert not created and again.id == first.id
    assert world.blobs.keys() == [f"jobs/{first.id}/request.json"]


def test_invalid_payload_is_refused_before_any_store_or_compute_call(world):
    with pytest.raises(InvalidInput) as info:
        submit(world, payload={"width": 500, "sampler_name": "nope"})
    assert {e.field for e in info.value.errors} == {"payload.width", "payload.sampler_name"}
    assert world.compute.submitted == [] and world.store.writes == 0


def test_unknown_checkpoint_names_the_field_and_lists_the_available_ones(world):
    with pytest.raises(ModelUnavailable) as info:
        submit(world, checkpoint="missing.safetensors")
    [error] = info.value.errors
    assert info.value.code == "model_unavailable" and isinstance(info.value, InvalidInput)
    assert error.field == "checkpoint"
    assert "tiny-sd15.safetensors" in error.message and "other.safetensors" in error.message
    assert world.compute.submitted == [] and world.blobs.keys() == []


def test_a_misspelt_checkpoint_gets_close_matches(world):
    with pytest.raises(ModelUnavailable) as info:
        submit(world, checkpoint="tiny-sd1.safetensors")
    assert "did you mean 'tiny-sd15.safetensors'" in info.value.errors[0].message


SHA = hashlib.sha256(CKPT.encode()).hexdigest()  # MemoryCatalog's hash of the name


@pytest.mark.parametrize(
    "name",
    [CKPT, "tiny-sd15", f"{CKPT} [{SHA[:10]}]", f"tiny-sd15 [{SHA[:10]}]", SHA[:10], SHA, f"{CKPT} [0a1b2c3d]"],
    ids=["file", "stem", "title", "stem-title", "short-hash", "sha256", "title-old-hash"],
)
def test_a_checkpoint_is_found_by_every_name_a1111_accepts(world, name):
    job, _ = submit(world, checkpoint=name)
    assert job.checkpoint == CKPT


def test_a_title_whose_hash_is_another_files_is_refused(world):
    with pytest.raises(ModelUnavailable) as info:
        submit(world, checkpoint=f"{CKPT} [0123456789]")
    assert f"has hash {SHA[:10]}, not 0123456789" in info.value.errors[0].message


def test_the_checkpoint_may_come_from_override_settings_and_errors_name_that_field(world):
    payload = {"prompt": "cat", "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
    job, _ = submit(world, payload=payload, checkpoint=None)
    assert job.checkpoint == CKPT
    payload["override_settings"]["sd_model_checkpoint"] = "nope [0123456789]"
    with pytest.raises(ModelUnavailable) as info:
        submit(world, payload=payload, checkpoint=None)
    assert info.value.errors[0].field == "payload.override_settings.sd_model_checkpoint"


def test_unknown_endpoint_and_bad_checkpoint_type(world):
    with pytest.raises(InvalidInput) as info:
        submit(world, endpoint="gpu-99", checkpoint=5)
    assert {e.field for e in info.value.errors} == {"endpoint", "checkpoint"}


def test_idempotency_key_returns_the_first_job(world):
    first, created = submit(world, key="k-1")
    again, created_again = submit(world, key="k-1")
    assert created and not created_again and again.id == first.id
    assert len(world.compute.submitted) == 1
    # The same key for another user is another job.
    other, created_other = submit(world, user=world.bob, key="k-1")
    assert created_other and other.id != first.id


def test_idempotency_key_reused_for_a_different_request_is_refused(world):
    submit(world, key="k-2")
    with pytest.raises(IdempotencyMismatch):
        submit(world, payload={"prompt": "dog"}, key="k-2")


def test_compute_refusing_the_job_fails_it_with_the_reason(world):
    world.compute.fail_submit = RuntimeError("no capacity")
    job, created = submit(world)
    assert created and job.status is JobStatus.FAILED
    assert job.error.code == "submit_failed" and "no capacity" in job.error.message


def test_another_users_job_is_not_found(world):
    job, _ = submit(world)
    with pytest.raises(NotFound):
        world.inferences.get(world.bob, job.id)
    with pytest.raises(NotFound):
        world.inferences.cancel(world.bob, job.id)
    with pytest.raises(NotFound):
        world.inferences.get(world.ann, "nope")


def test_list_is_newest_first_and_paged(world):
    ids = [submit(world)[0].id for _ in range(5)]
    submit(world, user=world.bob)
    page1, cursor = world.inferences.list(world.ann, limit=2)
    page2, cursor2 = world.inferences.list(world.ann, limit=2, cursor=cursor)
    page3, cursor3 = world.inferences.list(world.ann, limit=2, cursor=cursor2)
    seen = [j.id for j in page1 + page2 + page3]
    assert seen == list(reversed(ids)) and cursor3 is None


def test_list_refuses_bad_limit_and_cursor(world):
    with pytest.raises(InvalidInput) as info:
        world.inferences.list(world.ann, limit=0)
    assert info.value.errors[0].field == "limit"
    with pytest.raises(InvalidInput) as info:
        world.inferences.list(world.ann, cursor="garbage")
    assert info.value.errors[0].field == "cursor"


def test_cancel_queued_job(world):
    job, _ = submit(world)
    cancelled = world.inferences.cancel(world.ann, job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.version == job.version + 1
    assert world.compute.cancelled == [job.id]
    assert job.id in world.notifier.notified


def test_cancel_running_job_marks_it_cancelling_and_tells_compute(world):
    job, _ = submit(world)
    assert world.events.job_started(job.id)
    asked = world.inferences.cancel(world.ann, job.id)
    assert asked.status is JobStatus.RUNNING and asked.cancel_requested
    assert asked.progress.phase == "cancelling" and world.compute.cancelled == [job.id]
    # Asking again changes nothing in the record but tells compute again.
    assert world.inferences.cancel(world.ann, job.id).version == asked.version
    assert world.compute.cancelled == [job.id, job.id]


def test_cancel_of_a_finished_job_is_a_conflict(world):
    job, _ = submit(world)
    world.inferences.cancel(world.ann, job.id)
    with pytest.raises(Conflict, match="already cancelled"):
        world.inferences.cancel(world.ann, job.id)


def test_skip_names_the_running_iteration(world):
    job, _ = submit(world, payload={"prompt": "cat", "n_iter": 3})
    with pytest.raises(Conflict, match="only a running job can skip"):
        world.inferences.skip(world.ann, job.id)
    world.events.job_started(job.id)
    world.events.job_progress(job.id, Progress("sampling", 2, 20, 0.1, iteration=1, n_iter=3))
    assert world.inferences.skip(world.ann, job.id).status is JobStatus.RUNNING
    assert world.compute.skipped == [(job.id, 1)]
    with pytest.raises(NotFound):
        world.inferences.skip(world.bob, job.id)
    world.inferences.cancel(world.ann, job.id)
    with pytest.raises(Conflict, match="being cancelled"):
        world.inferences.skip(world.ann, job.id)


def test_wait_for_change_returns_when_the_job_changes(world):
    job, _ = submit(world)

    async def scenario():
        waiter = asyncio.create_task(world.inferences.wait_for_change(world.ann, job.id, job.version, 10))
        await asyncio.sleep(0)  # let the waiter subscribe and read
        assert not waiter.done()
        world.events.job_started(job.id)
        return await asyncio.wait_for(waiter, 5)

    changed = asyncio.run(scenario())
    assert changed.status is JobStatus.RUNNING and changed.version == job.version + 1


def test_wait_for_change_returns_at_once_when_already_different_or_terminal(world):
    job, _ = submit(world)
    world.inferences.cancel(world.ann, job.id)
    # Known version is current but the job is terminal: no waiting.
    result = asyncio.run(world.inferences.wait_for_change(world.ann, job.id, job.version + 1, 30))
    assert result.status is JobStatus.CANCELLED
    other, _ = submit(world)
    result = asyncio.run(world.inferences.wait_for_change(world.ann, other.id, 999, 30))
    assert result.version == other.version


def test_wait_for_change_times_out_with_the_unchanged_job(world):
    job, _ = submit(world)
    result = asyncio.run(world.inferences.wait_for_change(world.ann, job.id, None, 0.05))
    assert result == job
    assert world.notifier.subscriber_count(job.id) == 0
