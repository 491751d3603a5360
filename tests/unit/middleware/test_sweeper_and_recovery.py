from middleware.domain import job as jobs
from middleware.domain.job import JobStatus
from middleware.services.job_events import JobEventHandler
from middleware.services.recovery import RESTART_REASON, recover_jobs
from middleware.services.sweeper import JobSweeper

CKPT = "tiny-sd15.safetensors"


def new_job(world):
    return world.inferences.submit(world.ann, "txt2img", {"prompt": "cat"}, CKPT, None, None)[0]


def test_sweeper_fails_silent_running_jobs_with_the_reason(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    sweeper = JobSweeper(world.store, events, world.compute, silence_s=30, clock_us=lambda: clock[0])
    silent, lively, queued = new_job(world), new_job(world), new_job(world)
    events.job_started(silent.id)
    events.job_started(lively.id)
    clock[0] += 20_000_000
    events.job_heartbeat(lively.id)
    assert sweeper.sweep_once() == []
    clock[0] += 15_000_000  # silent: 35 s without news; lively: 15 s
    assert sweeper.sweep_once() == [silent.id]
    failed = world.store.get(silent.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error.code == "worker_silent" and failed.error.message == "worker went silent for 30 s"
    assert world.compute.cancelled == [silent.id]
    assert world.store.get(lively.id).status is JobStatus.RUNNING
    assert world.store.get(queued.id).status is JobStatus.QUEUED  # queued jobs wait for a worker
    assert sweeper.sweep_once() == []


def test_recovery_fails_running_and_resubmits_queued(world):
    running, queued1, queued2, done = new_job(world), new_job(world), new_job(world), new_job(world)
    world.events.job_started(running.id)
    world.inferences.cancel(world.ann, done.id)
    world.compute.submitted.clear()
    report = recover_jobs(world.store, world.events, world.compute, page=1)
    assert report.failed == [running.id]
    assert report.resubmitted == [queued1.id, queued2.id]
    assert world.compute.submitted == [queued1.id, queued2.id]
    assert world.compute.request_keys[-1] == f"jobs/{queued2.id}/request.json"
    failed = world.store.get(running.id)
    assert failed.status is JobStatus.FAILED and failed.error.message == RESTART_REASON
    assert "middleware restarted while the job was running" in failed.error.message
    assert world.store.get(done.id).status is JobStatus.CANCELLED


def test_sweeper_ends_a_cancel_the_container_never_answers(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    sweeper = JobSweeper(
        world.store, events, world.compute, silence_s=300, cancel_timeout_s=60, clock_us=lambda: clock[0]
    )
    asked, lively = new_job(world), new_job(world)
    events.job_started(asked.id)
    events.job_started(lively.id)
    events.apply(asked.id, jobs.cancel_requested)
    clock[0] += 30_000_000
    events.job_heartbeat(asked.id)  # the container is alive, it just never stops
    assert sweeper.sweep_once() == []
    clock[0] += 31_000_000
    assert sweeper.sweep_once() == [asked.id]
    ended = world.store.get(asked.id)
    assert ended.status is JobStatus.CANCELLED and ended.error.code == "cancel_unanswered"
    assert "did not answer the cancel within 60 s" in ended.error.message
    assert world.store.get(lively.id).status is JobStatus.RUNNING
    assert sweeper.sweep_once() == []


def test_a_silent_job_being_cancelled_ends_cancelled_not_failed(world):
    clock = [10_000_000_000]
    events = JobEventHandler(world.store, world.blobs, world.notifier, clock_us=lambda: clock[0])
    sweeper = JobSweeper(
        world.store, events, world.compute, silence_s=30, cancel_timeout_s=600, clock_us=lambda: clock[0]
    )
    job = new_job(world)
    events.job_started(job.id)
    events.apply(job.id, jobs.cancel_requested)
    clock[0] += 31_000_000
    assert sweeper.sweep_once() == [job.id]
    assert world.store.get(job.id).status is JobStatus.CANCELLED


def test_recovery_ends_a_job_being_cancelled_as_cancelled(world):
    job = new_job(world)
    world.events.job_started(job.id)
    world.inferences.cancel(world.ann, job.id)
    report = recover_jobs(world.store, world.events, world.compute)
    assert report.failed == [job.id]
    assert world.store.get(job.id).status is JobStatus.CANCELLED
