import asyncio

import pytest

from middleware.domain.errors import Conflict, IdempotencyMismatch, InvalidInput, NotFound
from middleware.domain.job import JobStatus

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


def test_submit_stores_a_queued_job_and_hands_the_document_to_compute(world):
    job, created = submit(world, payload={"prompt": "cat", "steps": 20})
    assert created and job.status is JobStatus.QUEUED and job.version == 1
    assert job.owner == "ann" and job.endpoint == "local" and job.checkpoint == CKPT
    assert world.store.get(job.id) == job
    [document] = world.compute.submitted
    model = world.catalog.get(CKPT)
    assert document == {
        "id": job.id,
        "task": "txt2img",
        "payload": {"prompt": "cat", "steps": 20},
        "models": {"checkpoint": model.ref(), "loras": [], "embeddings": []},
    }
    assert "output" not in document


def test_invalid_payload_is_refused_before_any_store_or_compute_call(world):
    with pytest.raises(InvalidInput) as info:
        submit(world, payload={"width": 500, "sampler_name": "nope"})
    assert {e.field for e in info.value.errors} == {"payload.width", "payload.sampler_name"}
    assert world.compute.submitted == [] and world.store.writes == 0


def test_unknown_checkpoint_names_the_field_and_lists_the_available_ones(world):
    with pytest.raises(InvalidInput) as info:
        submit(world, checkpoint="missing.safetensors")
    [error] = info.value.errors
    assert error.field == "checkpoint"
    assert "tiny-sd15.safetensors" in error.message and "other.safetensors" in error.message
    assert world.compute.submitted == []


def test_checkpoint_title_with_hash_is_accepted(world):
    job, _ = submit(world, checkpoint=f"{CKPT} [0123456789]")
    assert job.checkpoint == CKPT


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


def test_cancel_running_job_and_refuse_terminal(world):
    job, _ = submit(world)
    assert world.events.job_started(job.id)
    assert world.inferences.cancel(world.ann, job.id).status is JobStatus.CANCELLED
    with pytest.raises(Conflict, match="already cancelled"):
        world.inferences.cancel(world.ann, job.id)


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
