"""Progress published to the output store: off the sampling thread, rate-limited, never failing a job."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from inference_container.engine.types import Progress
from inference_container.outputs import FolderOutputStore
from inference_container.progress import ProgressBoard, ProgressPublisher, progress_document


class RecordingStore(FolderOutputStore):
    """The folder store, recording every put and, while ``gate`` is clear, holding puts back
    (an S3 PUT that takes its time)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.puts: list[tuple[str, bytes]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.entered.set()
        if not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        if self.fail:
            raise OSError("the store is down")
        self.puts.append((key, data))
        super().put(key, data, content_type)

    def documents(self, prefix: str = "jobs/j/") -> list[dict]:
        return [json.loads(data) for key, data in self.puts if key == prefix + "progress.json"]


def _describe(progress: Progress) -> dict:
    return progress_document(progress, None, 0)


@pytest.fixture
def store(tmp_path):
    return RecordingStore(tmp_path)


def _publisher(store, interval_s: float) -> ProgressPublisher:
    publisher = ProgressPublisher(store, interval_s=interval_s, final_wait_s=30)
    publisher.track("j", "jobs/j/", _describe)
    return publisher


def test_a_slow_store_never_holds_up_the_sampling_thread(store):
    publisher = _publisher(store, interval_s=0)
    store.gate.clear()
    publisher.offer(Progress("j", "sampling", 1, 100))
    assert store.entered.wait(10)  # the publisher is now stuck inside a PUT
    for step in range(2, 101):  # every step reports while that PUT hangs: none of them waits for it
        publisher.offer(Progress("j", "sampling", step, 100))
    store.gate.set()
    publisher.offer(Progress("j", "done", 100, 100))
    documents = store.documents()
    assert documents[-1]["phase"] == "done"
    assert len(documents) < 10  # the newest state wins: the 98 states reported during the PUT were not queued
    publisher.stop()


def test_writes_are_rate_limited_but_phase_changes_and_the_end_are_written_at_once(store):
    publisher = _publisher(store, interval_s=3600)
    publisher.offer(Progress("j", "loading_model", 0, 50))
    for step in range(1, 51):
        publisher.offer(Progress("j", "sampling", step, 50))
    publisher.offer(Progress("j", "done", 50, 50))
    phases = [d["phase"] for d in store.documents()]
    assert phases[-1] == "done"
    assert phases.count("sampling") <= 1 and len(phases) <= 3
    assert json.loads(store.get("jobs/j/progress.json"))["step"] == 50
    publisher.stop()


def test_a_new_preview_is_written_once_beside_the_progress_it_belongs_to(store):
    publisher = _publisher(store, interval_s=0)
    board = ProgressBoard(listener=publisher.offer)
    board.report(Progress("j", "sampling", 5, 20, preview=b"jpeg-5", preview_step=5))
    for step in range(6, 20):  # no new preview: the board carries step 5's forward
        board.report(Progress("j", "sampling", step, 20))
    board.report(Progress("j", "sampling", 20, 20, preview=b"jpeg-20", preview_step=20))
    board.report(Progress("j", "done", 20, 20))
    previews = [data for key, data in store.puts if key == "jobs/j/preview.jpg"]
    assert previews[-1] == b"jpeg-20" and len(previews) <= 2
    assert store.get("jobs/j/preview.jpg") == b"jpeg-20"
    final = json.loads(store.get("jobs/j/progress.json"))
    assert (final["phase"], final["preview_step"], final["preview"]) == ("done", 20, None)  # the image is apart
    publisher.stop()


def test_a_job_that_reports_nothing_new_is_still_rewritten_as_a_heartbeat(store):
    # e.g. minutes of "loading_model" while a large checkpoint downloads: the middleware sees it alive
    publisher = ProgressPublisher(store, interval_s=0, heartbeat_s=0.05, final_wait_s=30)
    publisher.track("j", "jobs/j/", _describe)
    publisher.offer(Progress("j", "loading_model", 0, 20))
    deadline = time.monotonic() + 30
    while len(store.documents()) < 3:
        assert time.monotonic() < deadline, "no heartbeat was written"
        time.sleep(0.01)
    publisher.offer(Progress("j", "done", 20, 20))
    documents = store.documents()
    beats = [d for d in documents if d["phase"] == "loading_model"]
    assert len(beats) >= 3 and beats[0]["updated_at"] <= beats[-1]["updated_at"]
    assert documents[-1]["phase"] == "done"
    count = len(documents)
    publisher.stop()
    assert len(store.documents()) == count  # a finished job gets no heartbeats


def test_a_failing_store_is_logged_once_and_the_end_is_still_reported(store, caplog):
    store.fail = True
    publisher = _publisher(store, interval_s=0)
    with caplog.at_level(logging.WARNING, logger="inference_container.progress"):
        publisher.offer(Progress("j", "sampling", 1, 2))
        publisher.offer(Progress("j", "failed", 1, 2))  # returns: a failed write counts as done
    warnings = [r for r in caplog.records if "writing the progress of job j" in r.getMessage()]
    assert len(warnings) == 1 and "the store is down" in warnings[0].getMessage()
    assert store.puts == []
    publisher.stop()


def test_untracked_and_forgotten_jobs_publish_nothing(store):
    publisher = _publisher(store, interval_s=0)
    publisher.forget("j")
    publisher.offer(Progress("j", "done", 1, 1))
    publisher.offer(Progress("other", "done", 1, 1))
    publisher.offer(Progress(None, "idle"))
    publisher.stop()
    assert store.puts == []
