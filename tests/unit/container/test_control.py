"""Job control without HTTP: markers read through the output-store port, rate-limited by a clock."""

from __future__ import annotations

import json

from inference_container.body_checks import lone_surrogate_path
from inference_container.control import JobControl, JobControls, JobMarkers
from inference_container.outputs import FolderOutputStore


class CountingStore(FolderOutputStore):
    """The folder store, counting reads (what an S3 store would pay for in GETs)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def exists(self, key: str) -> bool:
        self.reads += 1
        return super().exists(key)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_markers_are_read_at_most_once_per_interval(tmp_path):
    store, clock = CountingStore(tmp_path), Clock()
    control = JobControl("j", 2, JobMarkers(store, "jobs/j/", interval_s=0.5, clock=clock))
    assert control.poll(0) == "continue"
    first = store.reads
    for _ in range(20):  # twenty steps within the interval: no further reads
        assert control.poll(0) == "continue"
    assert store.reads == first
    store.put("jobs/j/cancel", b"", "text/plain")
    assert control.poll(0) == "continue"  # not seen yet: the interval has not passed
    clock.now += 0.5
    assert control.poll(0) == "interrupt"
    assert control.poll(1) == "interrupt"  # an interrupt stays


def test_skip_marker_names_one_iteration(tmp_path):
    store, clock = FolderOutputStore(tmp_path), Clock()
    control = JobControl("j", 3, JobMarkers(store, "jobs/j/", interval_s=1.0, clock=clock))
    store.put("jobs/j/skip", json.dumps({"iteration": 1}).encode(), "application/json")
    assert control.poll(0) == "continue"
    assert control.poll(1) == "skip"
    store.put("jobs/j/skip", json.dumps({"iteration": 2}).encode(), "application/json")
    clock.now += 1
    assert control.poll(2) == "skip"
    assert control.poll(1) == "skip"  # a skip once seen is kept, though the marker now names 2


def test_should_start_reads_the_markers_at_once(tmp_path):
    store, clock = FolderOutputStore(tmp_path), Clock()
    markers = JobMarkers(store, "jobs/j/", interval_s=60, clock=clock)
    control = JobControl("j", 1, markers)
    assert control.poll(0) == "continue"
    store.put("jobs/j/cancel", b'{"action": "interrupt"}', "application/json")
    assert control.should_start() is False  # forced read, whatever the interval says


def test_http_requests_and_defaults():
    control = JobControl("j", 3)
    assert control.state == "queued" and control.request_skip() == "queued"
    assert control.poll(0) == "skip"  # a queued job's default skip is its first iteration
    assert control.poll(1) == "continue" and control.iteration == 1
    control.request_skip()  # the one sampling now
    assert control.poll(1) == "skip"
    assert control.request_interrupt() == "queued" and control.poll(2) == "interrupt"


def test_controls_refuse_a_duplicate_live_job_and_forget_old_finished_ones():
    controls = JobControls()
    first = JobControl("a", 1)
    assert controls.add(first) and not controls.add(JobControl("a", 1))
    first.mark("finished")
    assert controls.add(JobControl("a", 1))
    for n in range(200):
        done = JobControl(f"f{n}", 1)
        controls.add(done)
        done.mark("finished")
    controls.add(JobControl("last", 1))
    assert controls.get("f0") is None and controls.get("f199") is not None and controls.get("a") is not None


def test_lone_surrogate_path():
    assert lone_surrogate_path({"payload": {"prompt": "fine 😀"}}) is None
    assert lone_surrogate_path(json.loads('{"payload": {"prompt": "\\ud83d\\ude00"}}')) is None  # a pair
    assert lone_surrogate_path(json.loads('{"a": [{"b": "\\ud800"}]}')) == "a[0].b"
