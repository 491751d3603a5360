"""ComputeRouter over fakes of the Compute port, alone and behind the services."""

from __future__ import annotations

import pytest

from middleware.adapters.compute_router import ComputeRouter, UnknownEndpoint
from middleware.domain.job import JobStatus
from middleware.ports import Compute
from middleware.services.inferences import InferenceService
from middleware.services.recovery import recover_jobs
from tests.fakes.memory_ports import FakeCompute

CKPT = "tiny-sd15.safetensors"


@pytest.fixture
def gpus() -> dict[str, FakeCompute]:
    return {"gpu0": FakeCompute(name="gpu0"), "gpu1": FakeCompute(name="gpu1")}


@pytest.fixture
def router(gpus) -> ComputeRouter:
    return ComputeRouter(list(gpus.items()))


def key(job_id: str) -> str:
    return f"jobs/{job_id}/request.json"


def test_router_is_a_compute(router):
    assert isinstance(router, Compute)
    assert router.names == ("gpu0", "gpu1") and router.default == "gpu0"


def test_submit_goes_to_the_named_endpoint_and_the_first_by_default(router, gpus):
    router.submit("a", key("a"), endpoint="gpu1")
    router.submit("b", key("b"))
    router.submit("c", key("c"), endpoint="gpu0")
    assert gpus["gpu0"].submitted == ["b", "c"]
    assert gpus["gpu1"].submitted == ["a"]
    # Each endpoint is told its own name, and receives the request's key unchanged.
    assert gpus["gpu0"].submitted_to == ["gpu0", "gpu0"] and gpus["gpu1"].submitted_to == ["gpu1"]
    assert gpus["gpu1"].request_keys == [key("a")]


def test_unknown_endpoint_is_refused_and_names_the_configured_ones(router, gpus):
    with pytest.raises(UnknownEndpoint) as info:
        router.submit("a", key("a"), endpoint="gpu9")
    assert str(info.value) == "endpoint 'gpu9' is not configured (configured: gpu0, gpu1)"
    assert isinstance(info.value, ValueError)
    assert gpus["gpu0"].submitted == [] and gpus["gpu1"].submitted == []


def test_cancel_goes_to_the_endpoint_that_has_the_job(router, gpus):
    router.submit("a", key("a"), endpoint="gpu1")
    router.submit("b", key("b"), endpoint="gpu0")
    router.cancel("a")
    assert gpus["gpu1"].cancelled == ["a"] and gpus["gpu0"].cancelled == []
    # A skip, and a second cancel, reach the same endpoint (the partial result still comes).
    router.skip("a", 2)
    router.cancel("a")
    assert gpus["gpu1"].skipped == [("a", 2)] and gpus["gpu1"].cancelled == ["a", "a"]
    router.skip("zzz", 0)
    assert gpus["gpu0"].skipped == [("zzz", 0)]
    # A job this router never routed (or forgot) is cancelled everywhere; harmless where unknown.
    router.cancel("zzz")
    assert gpus["gpu0"].cancelled == ["zzz"] and gpus["gpu1"].cancelled == ["a", "a", "zzz"]


def test_a_refused_submit_is_not_remembered(router, gpus):
    gpus["gpu1"].fail_submit = RuntimeError("full")
    with pytest.raises(RuntimeError, match="full"):
        router.submit("a", key("a"), endpoint="gpu1")
    router.cancel("a")
    assert gpus["gpu0"].cancelled == ["a"] and gpus["gpu1"].cancelled == ["a"]


def test_the_job_memory_is_bounded(gpus):
    router = ComputeRouter(list(gpus.items()), remember_jobs=2)
    for job_id in ("a", "b", "c"):
        router.submit(job_id, key(job_id), endpoint="gpu1")
    router.cancel("c")
    assert gpus["gpu1"].cancelled == ["c"] and gpus["gpu0"].cancelled == []
    router.cancel("a")  # forgotten: every endpoint hears it
    assert gpus["gpu0"].cancelled == ["a"] and gpus["gpu1"].cancelled == ["c", "a"]


def test_endpoints_lists_every_endpoint_in_order_with_its_state(router, gpus):
    gpus["gpu1"].endpoint_state = "OutOfService"
    states = router.endpoints()
    assert [(s.name, s.status) for s in states] == [("gpu0", "InService"), ("gpu1", "OutOfService")]
    gpus["gpu0"].fail_endpoints = RuntimeError("socket on fire")
    first, second = router.endpoints()
    assert (first.name, first.status) == ("gpu0", "OutOfService")
    assert "could not ask endpoint 'gpu0': socket on fire" in first.detail
    assert second.name == "gpu1"


def test_start_and_stop_reach_every_endpoint(router, gpus):
    router.start()
    assert all(g.running and g.starts == 1 for g in gpus.values())
    router.stop()
    assert all(g.stops == 1 and not g.running for g in gpus.values())


class StuckCompute(FakeCompute):
    def stop(self) -> None:
        raise RuntimeError("stuck")


def test_one_endpoint_failing_to_stop_does_not_keep_the_others_running():
    stuck, fine = StuckCompute(name="a"), FakeCompute(name="b")
    router = ComputeRouter([("a", stuck), ("b", fine)])
    router.start()
    router.stop()
    assert fine.stops == 1 and not fine.running


def test_names_must_be_unique_and_present():
    with pytest.raises(ValueError, match="unique"):
        ComputeRouter([("a", FakeCompute(name="a")), ("a", FakeCompute(name="a"))])
    with pytest.raises(ValueError, match="at least one"):
        ComputeRouter([])


# --- behind the services ------------------------------------------------------------------------


@pytest.fixture
def service(world, router) -> InferenceService:
    return InferenceService(
        world.store, world.blobs, world.catalog, router, world.notifier, world.events, endpoint_names=router.names
    )


def submit(service, world, endpoint=None):
    return service.submit(world.ann, "txt2img", {"prompt": "cat"}, CKPT, endpoint, None)[0]


def test_service_routes_jobs_by_their_endpoint(service, world, gpus):
    on_gpu1 = submit(service, world, "gpu1")
    on_default = submit(service, world)
    assert on_gpu1.endpoint == "gpu1" and on_default.endpoint == "gpu0"
    assert gpus["gpu1"].submitted == [on_gpu1.id] and gpus["gpu1"].request_keys == [key(on_gpu1.id)]
    assert gpus["gpu0"].submitted == [on_default.id]
    service.cancel(world.ann, on_gpu1.id)
    assert gpus["gpu1"].cancelled == [on_gpu1.id] and gpus["gpu0"].cancelled == []


def test_recovery_resubmits_to_the_jobs_own_endpoint_or_fails_naming_it(world):
    before = ComputeRouter([(n, FakeCompute(name=n)) for n in ("gpu0", "gpu1", "gpu7")])
    service = InferenceService(
        world.store, world.blobs, world.catalog, before, world.notifier, world.events, endpoint_names=before.names
    )
    first = submit(service, world, "gpu1")
    second = submit(service, world, "gpu0")
    gone = submit(service, world, "gpu7")
    # The next start no longer configures gpu7.
    after = {"gpu0": FakeCompute(name="gpu0"), "gpu1": FakeCompute(name="gpu1")}
    router = ComputeRouter(list(after.items()))
    report = recover_jobs(world.store, world.events, router, endpoint_names=router.names)
    assert sorted(report.resubmitted) == sorted([first.id, second.id])
    assert report.failed == [gone.id]
    assert after["gpu1"].submitted == [first.id] and after["gpu1"].submitted_to == ["gpu1"]
    assert after["gpu0"].submitted == [second.id] and after["gpu0"].submitted_to == ["gpu0"]
    assert after["gpu1"].request_keys == [key(first.id)]
    failed = world.store.get(gone.id)
    assert failed.status is JobStatus.FAILED and failed.error.code == "endpoint_not_configured"
    assert failed.error.message == (
        "endpoint 'gpu7' is no longer configured (configured: gpu0, gpu1); generate again on one of those"
    )


def test_recovery_fails_a_job_its_endpoint_refuses_and_goes_on(service, world, gpus):
    refused = submit(service, world, "gpu0")
    fine = submit(service, world, "gpu1")
    restarted = {"gpu0": FakeCompute(name="gpu0"), "gpu1": FakeCompute(name="gpu1")}
    restarted["gpu0"].fail_submit = RuntimeError("queue closed")
    report = recover_jobs(world.store, world.events, ComputeRouter(list(restarted.items())))
    assert report.failed == [refused.id] and report.resubmitted == [fine.id]
    failed = world.store.get(refused.id)
    assert (
        failed.error.code == "submit_failed"
        and "'gpu0' refused the job: queue closed" in failed.error.message
    )
