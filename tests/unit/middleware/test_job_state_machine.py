import itertools

import pytest

from middleware.domain import job as jobs
from middleware.domain.errors import IllegalTransition
from middleware.domain.job import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    Job,
    JobError,
    JobStatus,
    Progress,
    can_transition,
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


def make_job(status: JobStatus = Q, version: int = 1, **kw) -> Job:
    return Job(
        id="j1",
        owner="ann",
        task="txt2img",
        summary={},
        checkpoint="m.safetensors",
        checkpoint_hash="0123456789",
        endpoint="local",
        created_at=1,
        updated_at=1,
        status=status,
        version=version,
        **kw,
    )


RESULT = {"count": 1, "interrupted": False, "info": "{}", "infotexts": ["t"], "parameters": {}}

# The domain function that moves a job to each status (queued is never a target).
MOVES = {
    R: lambda job: jobs.started(job, 99),
    S: lambda job: jobs.succeeded(job, RESULT, 99),
    F: lambda job: jobs.failed(job, JobError("x", "why"), 99),
    C: lambda job: jobs.cancelled(job, 99),
}


def test_expected_table_covers_every_pair():
    assert set(EXPECTED) == set(itertools.product(JobStatus, JobStatus))


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED, key=lambda p: (p[0].value, p[1].value)))
def test_transition_pair(src: JobStatus, dst: JobStatus):
    assert can_transition(src, dst) is EXPECTED[(src, dst)]
    assert can_transition(src.value, dst.value) is EXPECTED[(src, dst)]
    if dst is Q:
        return  # nothing moves a job to queued
    job = make_job(src, version=4)
    if EXPECTED[(src, dst)]:
        moved = MOVES[dst](job)
        assert moved.status is dst
        assert moved.version == 5
        assert moved.updated_at == 99
        assert job.status is src  # the original is untouched (frozen)
    else:
        with pytest.raises(IllegalTransition) as info:
            MOVES[dst](job)
        assert src.value in str(info.value)


def test_terminal_states_are_final():
    assert TERMINAL_STATUSES == {S, F, C}
    for status in TERMINAL_STATUSES:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
        assert status.is_terminal
    assert not Q.is_terminal and not R.is_terminal


def test_success_carries_the_result_summary():
    done = jobs.succeeded(make_job(R, version=3, progress=Progress("sampling", 7, 9, 0.7)), RESULT, 9)
    assert done.status is S and done.version == 4 and done.result["infotexts"] == ["t"]
    assert done.progress == Progress("done", 9, 9, 1.0)


def test_failed_carries_the_error_and_keeps_the_step():
    running = make_job(R, progress=Progress("sampling", 3, 10, 0.3))
    moved = jobs.failed(running, JobError("oom", "lower the size"), 5)
    assert moved.error == JobError("oom", "lower the size")
    assert moved.progress == Progress("failed", 3, 10, 0.3)


def test_progress_bumps_version_but_never_on_a_finished_job():
    job = jobs.progressed(make_job(R, version=2), Progress("sampling", 1, 20, 0.05), now_us=7)
    assert job.version == 3 and job.heartbeat_at == 7 and job.progress.step == 1
    with pytest.raises(IllegalTransition):
        jobs.progressed(make_job(S), Progress("sampling"), now_us=7)


def test_cancel_request_keeps_the_job_running_as_cancelling():
    running = make_job(R, version=3, progress=Progress("sampling", 4, 10, 0.4, iteration=1, n_iter=3))
    asked = jobs.cancel_requested(running, 50)
    assert asked.status is R and asked.version == 4 and asked.cancel_requested_at == 50
    assert asked.progress == Progress("cancelling", 4, 10, 0.4, iteration=1, n_iter=3)
    assert jobs.cancel_requested(asked, 60) is asked  # asking twice changes nothing
    # Progress still flows, but the phase stays "cancelling".
    later = jobs.progressed(asked, Progress("sampling", 5, 10, 0.5), 70)
    assert later.progress.phase == "cancelling" and later.progress.step == 5
    with pytest.raises(IllegalTransition):
        jobs.cancel_requested(make_job(Q), 50)  # a queued job is cancelled at once instead
    with pytest.raises(IllegalTransition):
        jobs.cancel_requested(make_job(S), 50)


def test_cancelled_keeps_partial_images_or_a_reason():
    asked = jobs.cancel_requested(make_job(R), 50)
    partial = jobs.cancelled(asked, 60, result={**RESULT, "interrupted": True})
    assert partial.status is C and partial.result["interrupted"] and partial.result["images"] == [
        {"index": 0, "key": "jobs/j1/images/0.png"}
    ]
    unanswered = jobs.cancelled(asked, 60, error=JobError("cancel_unanswered", "no answer"))
    assert unanswered.error.code == "cancel_unanswered" and unanswered.result is None


def test_progress_from_dict_clamps_and_defaults():
    assert Progress.from_dict(None) == Progress()
    assert Progress.from_dict({"phase": "sampling", "step": 3, "steps": 4, "fraction": 7}).fraction == 1.0
    assert Progress.from_dict({"phase": "x", "fraction": -1}).fraction == 0.0
    assert Progress.from_dict({"iteration": 2, "n_iter": 4, "step": "bad"}) == Progress(
        "queued", 0, 0, 0.0, 2, 4
    )


def test_request_document_is_the_design_job_document():
    assert jobs.request_document("j1", "txt2img", {"prompt": "x"}, {"checkpoint": {}}) == {
        "id": "j1",
        "task": "txt2img",
        "payload": {"prompt": "x"},
        "models": {"checkpoint": {}},
        "output": {"prefix": "jobs/j1/"},
    }


def test_summary_is_bounded_whatever_the_payload():
    huge = "a" * 65536
    summary = jobs.summarize_payload(
        {"prompt": huge, "negative_prompt": huge, "init_images": ["x" * 100_000] * 16, "mask": "m",
         "width": 64, "alwayson_scripts": {"big": huge}, "styles": [huge]}
    )  # fmt: skip
    assert len(summary["prompt"]) == jobs.PROMPT_EXCERPT_CHARS and summary["prompt"].endswith("…")
    assert summary["input_images"] == 17 and summary["width"] == 64
    assert "alwayson_scripts" not in summary and "init_images" not in summary


def test_result_summary_is_compact_and_moves_large_details_out():
    doc = {
        "output": {"images": [{"key": f"jobs/j1/images/{n}.png"} for n in range(256)]},
        "info": '{"infotexts": ["' + "p" * 20_000 + '"]}',
        "parameters": {"prompt": "p" * 20_000, "init_images": ["x"]},
        "interrupted": True,
    }
    summary = jobs.summarize_result("j1", doc)
    assert summary == {"count": 256, "interrupted": True, "detail_key": "jobs/j1/result.json"}
    job = make_job(S, result_summary=summary)
    assert len(job.result["images"]) == 256 and job.result["infotexts"] == []
    assert job.needs_result_detail
    full = jobs.with_result_detail(job, doc)
    assert full.result["infotexts"] == ["p" * 20_000] and "init_images" not in full.result["parameters"]
    # Keys that do not follow our layout are kept as they are.
    odd = jobs.summarize_result("j1", {"output": {"images": [{"key": "elsewhere/a.png"}]}, "info": ""})
    assert make_job(S, result_summary=odd).result["images"] == [{"index": 0, "key": "elsewhere/a.png"}]


def test_error_messages_are_bounded():
    error = JobError("c" * 500, "m" * 100_000)
    assert len(error.message) == jobs.MESSAGE_CHARS and len(error.code) <= 64


def test_job_ids_sort_by_creation():
    from middleware.services.ids import new_job_id

    ids = [new_job_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
