"""Progress of the running job and of jobs waiting behind it, shared by worker and HTTP handlers,
and, for a job with ``output.prefix``, published to the output store for the middleware to relay.

SageMaker async offers no way to reach a running container, so in AWS mode the middleware reads
``<prefix>progress.json`` (the same document ``GET /progress?job_id=`` answers) and
``<prefix>preview.jpg`` (the latest live preview) from the bucket. A ``ProgressPublisher`` writes
them on its own thread, at most once per interval but at once on a phase change, so a slow PUT
never holds up a sampling step; the final state is written before the job's answer goes out.
The published document leaves the preview out (``preview`` null: it is in preview.jpg) and adds
``updated_at`` (Unix seconds), rewritten at least every ``heartbeat_s`` while the job lives, so
the middleware can tell a long model download from a container that went silent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from inference_container.engine.types import Progress

log = logging.getLogger(__name__)

# Finished jobs stay visible for a while so a caller that polls just after the end still sees "done".
_REMEMBERED_JOBS = 64
PROGRESS_DOCUMENT = "progress.json"
PREVIEW_IMAGE = "preview.jpg"
TERMINAL_PHASES = frozenset({"done", "interrupted", "failed"})


class _Control(Protocol):
    @property
    def iteration(self) -> int: ...

    n_iter: int


def progress_document(progress: Progress, control: _Control | None, queue_depth: int) -> dict[str, Any]:
    """What ``GET /progress`` answers for ``progress``: ``iteration`` is the batch iteration
    (0-based, of ``n_iter``) sampling now, the one a skip ends."""
    body = progress.to_dict()
    body["iteration"] = control.iteration if control else 0
    body["n_iter"] = control.n_iter if control else 0
    body["queue_depth"] = queue_depth
    return body


class ProgressBoard:
    def __init__(self, listener: Callable[[Progress], None] | None = None) -> None:
        """``listener`` sees every job's progress as the board keeps it (previews carried forward)."""
        self._lock = threading.Lock()
        self._current = Progress(job_id=None, phase="idle")
        self._jobs: OrderedDict[str, Progress] = OrderedDict()
        self._listener = listener

    def report(self, progress: Progress) -> None:
        with self._lock:
            earlier = self._jobs.get(progress.job_id) if progress.job_id is not None else None
            if progress.preview is None and earlier is not None and earlier.preview is not None:
                # A live preview stays up until the next one replaces it.
                progress = dataclasses.replace(progress, preview=earlier.preview, preview_step=earlier.preview_step)
            if progress.job_id is not None:
                self._jobs[progress.job_id] = progress
                self._jobs.move_to_end(progress.job_id)
                while len(self._jobs) > _REMEMBERED_JOBS:
                    self._jobs.popitem(last=False)
            if progress.phase != "queued":  # a job joining the queue does not displace the running one
                self._current = progress
        if self._listener is not None and progress.job_id is not None:
            self._listener(progress)

    def current(self) -> Progress:
        with self._lock:
            return self._current

    def of_job(self, job_id: str) -> Progress | None:
        with self._lock:
            return self._jobs.get(job_id)


class _Store(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...


@dataclass
class _Track:
    """One job being published: its latest unpublished progress and what was last written."""

    prefix: str
    describe: Callable[[Progress], dict[str, Any]]
    pending: Progress | None = None
    written: Progress | None = None
    written_phase: str | None = None
    written_at: float | None = None
    written_preview_step: int | None = None
    failures: int = 0
    finished: threading.Event = field(default_factory=threading.Event)


class ProgressPublisher:
    """Writes each tracked job's progress to the output store from one background thread.

    ``offer`` only records the newest state and wakes the thread (the newest state wins: under a
    slow store intermediate states are skipped, never queued). A state is written when its phase
    differs from the last one written, or ``interval_s`` after the last write; a terminal phase is
    written at once and ``offer`` waits for it (up to ``final_wait_s``), so when the job answers,
    ``progress.json`` already says how it ended. A failed write is logged, never raised.
    """

    def __init__(self, store: _Store, *, interval_s: float = 1.0, heartbeat_s: float = 30.0,
                 final_wait_s: float = 15.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._interval = interval_s
        self._heartbeat = max(heartbeat_s, interval_s, 0.01)  # never a busy loop
        self._wall_clock = wall_clock
        self._final_wait = final_wait_s
        self._clock = clock
        self._changed = threading.Condition()
        self._tracks: dict[str, _Track] = {}
        self._stopping = False
        self.writes = 0
        self._thread = threading.Thread(target=self._loop, name="progress-publisher", daemon=True)
        self._thread.start()

    def track(self, job_id: str, prefix: str, describe: Callable[[Progress], dict[str, Any]]) -> None:
        """Publish ``job_id``'s progress under ``prefix``; ``describe`` builds the document."""
        with self._changed:
            replaced = self._tracks.get(job_id)
            self._tracks[job_id] = _Track(prefix, describe)
        if replaced is not None:  # a finished job's id reused: nobody waits on the old one any more
            replaced.finished.set()

    def forget(self, job_id: str) -> None:
        """Stop publishing ``job_id`` (it never entered the queue)."""
        with self._changed:
            track = self._tracks.pop(job_id, None)
        if track is not None:
            track.finished.set()

    def offer(self, progress: Progress) -> None:
        """The board's listener: note the newest state; for a terminal one wait until it is written."""
        if progress.job_id is None:
            return
        with self._changed:
            track = self._tracks.get(progress.job_id)
            if track is None:
                return
            track.pending = progress
            self._changed.notify()
        if progress.phase in TERMINAL_PHASES and not track.finished.wait(self._final_wait):
            log.warning("progress of job %s was not written within %.0f s; answering anyway",
                        progress.job_id, self._final_wait)

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ the publishing thread

    def _due(self, track: _Track, now: float) -> Progress | None:
        """What to write for ``track`` now: its newest state, the last one again (a heartbeat), or None."""
        pending = track.pending
        if pending is None:
            if track.written is None or track.written_at is None or now - track.written_at < self._heartbeat:
                return None
            return track.written
        if pending.phase != track.written_phase or track.written_at is None or now - track.written_at >= self._interval:
            return pending
        return None

    def _wait_s(self, track: _Track, now: float) -> float | None:
        if track.written_at is None:
            return None
        return track.written_at + (self._interval if track.pending is not None else self._heartbeat) - now

    def _next_batch(self) -> list[tuple[str, _Track, Progress]] | None:
        """Block until some job's state is due; None when stopping."""
        with self._changed:
            while not self._stopping:
                now = self._clock()
                batch = []
                for job_id, track in self._tracks.items():
                    progress = self._due(track, now)
                    if progress is not None:
                        batch.append((job_id, track, progress))
                        track.pending = None
                if batch:
                    return batch
                waits = [w for w in (self._wait_s(t, now) for t in self._tracks.values()) if w is not None]
                self._changed.wait(max(0.0, min(waits)) if waits else None)
        return None

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            for job_id, track, progress in batch:
                self._publish(job_id, track, progress)

    def _publish(self, job_id: str, track: _Track, progress: Progress) -> None:
        try:
            # The preview first: once progress.json names preview_step n, preview.jpg shows n or later.
            if progress.preview is not None and progress.preview_step != track.written_preview_step:
                self._store.put(track.prefix + PREVIEW_IMAGE, progress.preview, "image/jpeg")
                track.written_preview_step = progress.preview_step
            document = track.describe(progress)
            document["preview"] = None  # the image is preview.jpg; the document stays a few hundred bytes
            document["updated_at"] = round(self._wall_clock(), 3)
            data = json.dumps(document, ensure_ascii=True).encode("ascii")
            self._store.put(track.prefix + PROGRESS_DOCUMENT, data, "application/json")
            self.writes += 1
        except Exception as exc:  # progress is a courtesy: a failed write never fails the job
            track.failures += 1
            if track.failures == 1:
                log.warning("writing the progress of job %s to %s failed: %s (further failures at debug level)",
                            job_id, track.prefix, exc)
            else:
                log.debug("writing the progress of job %s failed again: %s", job_id, exc)
        with self._changed:
            track.written = progress
            track.written_phase = progress.phase
            track.written_at = self._clock()
            if progress.phase in TERMINAL_PHASES:
                if track.pending is None and self._tracks.get(job_id) is track:
                    del self._tracks[job_id]
                track.finished.set()
