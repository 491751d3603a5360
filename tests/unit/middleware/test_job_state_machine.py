import itertools

import pytest

from middleware.domain.errors import IllegalTransition
from middleware.domain.job import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    Progress,
    can_transition,
    statuses_that_can_become,
    transition,
    with_progress,
)

Q, R, S, F, C = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)

# The whole table, spelled out pair by pair (DESIGN §4).
EXPECTED = {
    (Q, Q): False, (Q, R): True, (Q, S): False, (Q, F): True, (Q, C): True,
    (R, Q): False, (R, R): False, (R, S): True, (R, F): True, (R, C): True,
    (S, Q): False, (S, R): False, (S, S): False, (S, F): False, (S, C): False,
    (F, Q): False, (F, R): False, (F, S): False, (F, F): False, (F, C): False,
    (C, Q): False, (C, R): False, (C, S): False, (C, F): False, (C, C): False,
}  # fmt: skip


def make_job(status: JobStatus = Q, version: int = 1) -> Job:
    return Job(
        id="j1",
        owner="ann",
        task="txt2img",
        payload={},
        checkpoint="m.safetensors",
        models={},
        endpoint="local",
        created_at=1,
        updated_at=1,
        status=status,
        version=version,
    )


def test_expected_table_covers_every_pair():
    assert set(EXPECTED) == set(itertools.product(JobStatus, JobStatus))


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED, key=lambda p: (p[0].value, p[1].value)))
def test_transition_pair(src: JobStatus, dst: JobStatus):
    assert can_transition(src, dst) is EXPECTED[(src, dst)]
    assert can_transition(src.value, dst.value) is EXPECTED[(src, dst)]
    job = make_job(src, version=4)
    if EXPECTED[(src, dst)]:
        moved = transition(job, dst, now_us=99)
        assert moved.status is dst
        assert moved.version == 5
        assert moved.updated_at == 99
        assert job.status is src  # the original is untouched (frozen)
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(job, dst, now_us=99)
        assert src.value in str(info.value) and dst.value in str(info.value)


def test_terminal_states_are_final():
    assert TERMINAL_STATUSES == {S, F, C}
    for status in TERMINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
        assert status.is_terminal
    assert not Q.is_terminal and not R.is_terminal


def test_statuses_that_can_become():
    assert statuses_that_can_become(C) == (Q, R)
    assert statuses_that_can_become(S) == (R,)
    assert statuses_that_can_become(Q) == ()


def test_transition_carries_changes_and_refuses_unknown_fields():
    moved = transition(make_job(R), F, now_us=5, progress=Progress("failed", 3, 10, 0.3))
    assert moved.progress == Progress("failed", 3, 10, 0.3)
    with pytest.raises(ValueError, match="owner"):
        transition(make_job(R), F, now_us=5, owner="mallory")


def test_progress_bumps_version_but_never_on_a_finished_job():
    job = with_progress(make_job(R, version=2), Progress("sampling", 1, 20, 0.05), now_us=7)
    assert job.version == 3 and job.heartbeat_at == 7 and job.progress.step == 1
    with pytest.raises(IllegalTransition):
        with_progress(make_job(S), Progress("sampling"), now_us=7)


def test_progress_from_dict_clamps_and_defaults():
    assert Progress.from_dict(None) == Progress()
    assert Progress.from_dict({"phase": "sampling", "step": 3, "steps": 4, "fraction": 7}).fraction == 1.0
    assert Progress.from_dict({"phase": "x", "fraction": -1}).fraction == 0.0


def test_document_is_the_design_job_document():
    job = make_job()
    assert job.document() == {"id": "j1", "task": "txt2img", "payload": {}, "models": {}}


def test_job_ids_sort_by_creation():
    from middleware.services.ids import new_job_id

    ids = [new_job_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
