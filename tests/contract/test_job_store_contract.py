"""The JobStore contract: every adapter passes the same tests."""

from __future__ import annotations

import itertools
import threading

import pytest

from middleware.domain.errors import IllegalTransition
from middleware.domain.job import Job, JobError, JobStatus, Progress, can_transition

_ids = itertools.count()


def make_job(owner="ann", created_at=None, key=None, **kw) -> Job:
    n = next(_ids)
    created = created_at if created_at is not None else 1_000_000 + n
    return Job(
        id=kw.pop("id", f"{created:016x}{n:08x}"),
        owner=owner,
        task="txt2img",
        payload={"prompt": "cat", "nested": {"list": [1, 2]}},
        checkpoint="m.safetensors",
        models={"checkpoint": {"name": "m.safetensors", "uri": "file:///m", "sha256": "0" * 64, "size": 1}},
        endpoint="local",
        created_at=created,
        updated_at=created,
        heartbeat_at=created,
        idempotency_key=key,
        request_hash="h",
        **kw,
    )


def test_create_and_get_round_trip(job_store):
    job = make_job(progress=Progress("queued"))
    stored, created = job_store.create(job)
    assert created and stored == job
    assert job_store.get(job.id) == job
    assert job_store.get("missing") is None


def test_idempotency_key_is_unique_per_owner(job_store):
    first, created = job_store.create(make_job(key="k"))
    again, created_again = job_store.create(make_job(key="k"))
    other, created_other = job_store.create(make_job(owner="bob", key="k"))
    assert created and not created_again and again == first
    assert created_other and other.id != first.id
    assert job_store.find_by_idempotency_key("ann", "k") == first
    assert job_store.find_by_idempotency_key("ann", "nope") is None
    # Jobs without a key never collide.
    assert job_store.create(make_job())[1] and job_store.create(make_job())[1]


def test_duplicate_id_is_refused(job_store):
    job = make_job()
    job_store.create(job)
    with pytest.raises(ValueError):
        job_store.create(job)


def test_transition_applies_changes_and_bumps_the_version(job_store):
    job, _ = job_store.create(make_job())
    running = job_store.transition(
        job.id, JobStatus.QUEUED, 1, {"status": JobStatus.RUNNING, "heartbeat_at": 5}
    )
    assert running.status is JobStatus.RUNNING and running.version == 2 and running.heartbeat_at == 5
    assert running.updated_at >= job.updated_at
    result = {
        "images": [{"index": 0, "key": "jobs/x/images/0.png"}],
        "parameters": {},
        "info": "{}",
        "infotexts": [],
    }
    done = job_store.transition(
        job.id,
        JobStatus.RUNNING,
        2,
        {"status": JobStatus.SUCCEEDED, "result": result, "progress": Progress("done", 3, 3, 1.0)},
    )
    assert done.status is JobStatus.SUCCEEDED and done.version == 3
    assert done.result == result and done.progress == Progress("done", 3, 3, 1.0)
    assert job_store.get(job.id) == done


def test_failed_transition_stores_the_error(job_store):
    job, _ = job_store.create(make_job())
    failed = job_store.transition(
        job.id, JobStatus.QUEUED, 1, {"status": "failed", "error": JobError("x", "why")}
    )
    assert failed.error == JobError("x", "why")
    assert job_store.get(job.id).error == JobError("x", "why")


def test_stale_version_or_status_is_refused_without_change(job_store):
    job, _ = job_store.create(make_job())
    assert job_store.transition(job.id, JobStatus.QUEUED, 7, {"status": JobStatus.RUNNING}) is None
    assert job_store.transition(job.id, JobStatus.RUNNING, 1, {"status": JobStatus.SUCCEEDED}) is None
    assert job_store.transition("missing", JobStatus.QUEUED, 1, {"status": JobStatus.RUNNING}) is None
    assert job_store.get(job.id) == job


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(JobStatus, JobStatus)))
def test_the_transition_table_is_enforced_at_write_time(job_store, src, dst):
    job, _ = job_store.create(make_job())
    # Walk the job to ``src`` through legal moves.
    path = {
        JobStatus.QUEUED: [],
        JobStatus.RUNNING: [JobStatus.RUNNING],
        JobStatus.SUCCEEDED: [JobStatus.RUNNING, JobStatus.SUCCEEDED],
        JobStatus.FAILED: [JobStatus.FAILED],
        JobStatus.CANCELLED: [JobStatus.CANCELLED],
    }[src]
    current = job
    for step in path:
        current = job_store.transition(current.id, current.status, current.version, {"status": step})
    assert current.status is src
    if can_transition(src, dst):
        moved = job_store.transition(current.id, src, current.version, {"status": dst})
        assert moved is not None and moved.status is dst
    else:
        with pytest.raises(IllegalTransition):
            job_store.transition(current.id, src, current.version, {"status": dst})
        assert job_store.get(job.id) == current


def test_concurrent_writers_only_one_wins(job_store):
    job, _ = job_store.create(make_job())
    results: list[Job | None] = []
    barrier = threading.Barrier(8)

    def attempt(target: JobStatus) -> None:
        barrier.wait()
        results.append(job_store.transition(job.id, JobStatus.QUEUED, 1, {"status": target}))

    targets = [JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.RUNNING] * 2
    threads = [threading.Thread(target=attempt, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert job_store.get(job.id) == winners[0] and winners[0].version == 2


def test_progress_updates_bump_the_version_until_terminal(job_store):
    job, _ = job_store.create(make_job())
    first = job_store.update_progress(job.id, Progress("sampling", 1, 10, 0.1))
    assert first.version == 2 and first.progress == Progress("sampling", 1, 10, 0.1)
    assert first.heartbeat_at >= job.heartbeat_at
    job_store.transition(job.id, JobStatus.QUEUED, 2, {"status": JobStatus.CANCELLED})
    assert job_store.update_progress(job.id, Progress("sampling", 2, 10, 0.2)) is None
    assert job_store.get(job.id).progress.step == 1
    assert job_store.update_progress("missing", Progress()) is None


def test_touch_sets_the_heartbeat_without_a_version(job_store):
    job, _ = job_store.create(make_job())
    assert job_store.touch(job.id, 123_456_789)
    touched = job_store.get(job.id)
    assert touched.heartbeat_at == 123_456_789 and touched.version == 1
    job_store.transition(job.id, JobStatus.QUEUED, 1, {"status": JobStatus.FAILED})
    assert not job_store.touch(job.id, 999_999_999)
    assert not job_store.touch("missing", 1)


def test_list_by_owner_is_newest_first_with_a_cursor(job_store):
    jobs = [job_store.create(make_job(created_at=2_000_000 + i))[0] for i in range(7)]
    # Two jobs created in the same microsecond still page deterministically.
    twins = [job_store.create(make_job(created_at=2_000_003, id=f"twin{i}"))[0] for i in range(2)]
    job_store.create(make_job(owner="bob"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = job_store.list_by_owner("ann", 3, cursor)
        seen += [j.id for j in page]
        pages += 1
        if cursor is None:
            break
    everything = sorted(jobs + twins, key=lambda j: (j.created_at, j.id), reverse=True)
    assert seen == [j.id for j in everything]
    assert pages == 3
    assert job_store.list_by_owner("nobody", 5) == ([], None)
    exact, cursor = job_store.list_by_owner("bob", 1)
    assert len(exact) == 1 and cursor is None


def test_list_by_owner_refuses_a_foreign_cursor(job_store):
    with pytest.raises(ValueError):
        job_store.list_by_owner("ann", 3, "not-a-cursor!")


def test_find_stale_running(job_store):
    fresh, _ = job_store.create(make_job())
    stale, _ = job_store.create(make_job())
    queued_old, _ = job_store.create(make_job())
    job_store.transition(fresh.id, JobStatus.QUEUED, 1, {"status": JobStatus.RUNNING, "heartbeat_at": 9_000})
    job_store.transition(stale.id, JobStatus.QUEUED, 1, {"status": JobStatus.RUNNING, "heartbeat_at": 1_000})
    job_store.touch(queued_old.id, 1)
    assert [j.id for j in job_store.find_stale_running(5_000)] == [stale.id]
    assert job_store.find_stale_running(500) == []


def test_list_by_status_oldest_first_and_paged(job_store):
    ids = [job_store.create(make_job())[0].id for _ in range(5)]
    done = job_store.get(ids[1])
    job_store.transition(done.id, JobStatus.QUEUED, 1, {"status": JobStatus.CANCELLED})
    queued = [i for i in ids if i != done.id]
    first = job_store.list_by_status(JobStatus.QUEUED, limit=2)
    rest = job_store.list_by_status(JobStatus.QUEUED, limit=10, after_id=first[-1].id)
    assert [j.id for j in first + rest] == queued
    assert [j.id for j in job_store.list_by_status(JobStatus.CANCELLED)] == [done.id]
