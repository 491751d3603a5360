"""The AWS-mode notifier: waiters re-read the record (and relay progress) instead of being woken,
so a change made by another process is seen; waits stay below API Gateway's 29 s limit."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from middleware.adapters.polling_notifier import PollingNotifier
from middleware.domain import job as jobs
from middleware.domain.job import JobStatus
from middleware.services.progress_relay import ProgressRelay, progress_key

CKPT = "tiny-sd15.safetensors"


def new_job(world):
    return world.inferences.submit(world.ann, "txt2img", {"prompt": "cat", "steps": 20}, CKPT, None, None)[0]


def test_a_change_written_elsewhere_ends_the_wait(world):
    job = new_job(world)
    notifier = PollingNotifier(world.store, interval_s=0.01)

    async def scenario():
        with notifier.subscribe(job.id) as sub:
            # Another process (here: another thread, which never calls this notifier) starts it.
            threading.Timer(0.05, world.events.job_started, args=(job.id,)).start()
            return await sub.wait(10)

    assert asyncio.run(scenario()) is True
    assert world.store.get(job.id).status is JobStatus.RUNNING


def test_a_change_between_subscribe_and_wait_is_not_missed(world):
    job = new_job(world)
    notifier = PollingNotifier(world.store, interval_s=0.01)

    async def scenario():
        with notifier.subscribe(job.id) as sub:
            world.events.job_started(job.id)
            return await sub.wait(10)

    assert asyncio.run(scenario()) is True


def test_no_change_times_out(world):
    job = new_job(world)
    notifier = PollingNotifier(world.store, interval_s=0.01)

    async def scenario():
        with notifier.subscribe(job.id) as sub:
            return await sub.wait(0.05)

    assert asyncio.run(scenario()) is False


def test_each_look_relays_the_containers_progress(world):
    job = new_job(world)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    notifier = PollingNotifier(world.store, relay.relay, interval_s=0.01)
    document = {"job_id": job.id, "phase": "sampling", "step": 3, "steps": 20, "fraction": 0.15}

    async def scenario():
        with notifier.subscribe(job.id) as sub:
            world.blobs.put_bytes(progress_key(job.id), json.dumps(document).encode())
            return await sub.wait(10)

    assert asyncio.run(scenario()) is True
    assert world.store.get(job.id).progress.step == 3


def test_the_long_poll_through_the_service_sees_the_relayed_progress(world):
    job = new_job(world)
    relay = ProgressRelay(world.store, world.blobs, world.events)
    world.inferences._notifier = PollingNotifier(world.store, relay.relay, interval_s=0.01)  # noqa: SLF001
    document = {"job_id": job.id, "phase": "sampling", "step": 4, "steps": 20, "fraction": 0.2}
    world.blobs.put_bytes(progress_key(job.id), json.dumps(document).encode())

    seen = asyncio.run(world.inferences.wait_for_change(world.ann, job.id, job.version, 10))
    assert seen.status is JobStatus.RUNNING and seen.progress.step == 4


def test_notify_is_harmless_and_a_missing_job_has_no_version(world):
    notifier = PollingNotifier(world.store, interval_s=0.01)
    notifier.notify("nobody")
    assert notifier.look("nobody") is None
    job = new_job(world)
    world.events.apply(job.id, jobs.cancelled)
    assert notifier.look(job.id) == world.store.get(job.id).version


def test_waits_are_bounded_below_api_gateways_limit(world):
    with pytest.raises(ValueError, match="29 s"):
        PollingNotifier(world.store, max_wait_s=29)
    with pytest.raises(ValueError, match="positive"):
        PollingNotifier(world.store, interval_s=0)
    job = new_job(world)
    notifier = PollingNotifier(world.store, interval_s=0.01, max_wait_s=0.05)

    async def scenario():
        with notifier.subscribe(job.id) as sub:
            return await sub.wait(3600)  # capped at max_wait_s: returns, unchanged

    assert asyncio.run(scenario()) is False


def test_the_service_caps_a_long_poll_at_its_max_wait(world):
    job = new_job(world)
    world.inferences._max_wait = 0.05  # noqa: SLF001 - what build_aws sets (25 s)
    seen = asyncio.run(world.inferences.wait_for_change(world.ann, job.id, job.version, 3600))
    assert seen.version == job.version
