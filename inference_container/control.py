"""Interrupt and skip for a job: asked over HTTP or through markers in the output store.

A running job's sampler calls ``JobControl.poll(iteration)`` before every step (the
``SamplingControl`` port of ``engine/types.py``) and gets ``"continue"``, ``"skip"`` (end batch
iteration ``iteration`` now, go on with the next) or ``"interrupt"`` (stop; the images sampled so
far come back, as with the WebUI's Interrupt).

Two ways in, one answer:
- ``POST /jobs/{id}/interrupt`` and ``/skip`` set flags on the job's control (local mode);
- SageMaker async has no cancel call, so the middleware writes ``<output.prefix>cancel`` (any
  body, ``{"action": "interrupt"}`` by convention) or ``<output.prefix>skip``
  (``{"iteration": n}``) into the output store. ``JobMarkers`` reads them at most once per
  ``interval_s`` (a setting), so an object store's GET latency never slows sampling down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from inference_container.outputs import OutputStore

log = logging.getLogger(__name__)

Action = Literal["continue", "skip", "interrupt"]
JobState = Literal["queued", "running", "finished", "unknown"]
CANCEL_MARKER = "cancel"
SKIP_MARKER = "skip"
# Finished jobs' controls stay known for a while, so a late interrupt answers "finished", not "unknown".
_REMEMBERED_JOBS = 64


class JobMarkers:
    """The cancel/skip markers under one job's output prefix, read at most once per interval."""

    def __init__(self, store: OutputStore, prefix: str, *, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._prefix = prefix
        self._interval = interval_s
        self._clock = clock
        self._last_read: float | None = None
        self.reads = 0

    def read(self, *, force: bool = False) -> tuple[bool, int | None] | None:
        """(cancelled, iteration to skip or None), or None when the last read is too recent."""
        now = self._clock()
        if not force and self._last_read is not None and now - self._last_read < self._interval:
            return None
        self._last_read = now
        self.reads += 1
        try:
            if self._store.exists(self._prefix + CANCEL_MARKER):
                return True, None
            return False, _skip_iteration(self._store.get(self._prefix + SKIP_MARKER), self._prefix)
        except Exception:  # a flaky store must not fail the job it could only have cancelled
            log.warning("reading the control markers under %s failed; trying again later", self._prefix,
                        exc_info=True)
            return False, None


def _skip_iteration(body: bytes | None, prefix: str) -> int | None:
    if body is None:
        return None
    try:
        iteration = json.loads(body)["iteration"]
    except (ValueError, TypeError, KeyError):
        iteration = None
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        log.warning("ignoring %s%s: expected {\"iteration\": <n >= 0>}", prefix, SKIP_MARKER)
        return None
    return iteration


class JobControl:
    """One job's interrupt/skip requests and where it is (state, current batch iteration)."""

    def __init__(self, job_id: str, n_iter: int, markers: JobMarkers | None = None) -> None:
        self.job_id = job_id
        self.n_iter = n_iter
        self._markers = markers
        self._lock = threading.Lock()
        self._state: JobState = "queued"
        self._interrupt = False
        self._skip: set[int] = set()
        self._iteration = 0

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    @property
    def iteration(self) -> int:
        """The batch iteration (0-based) the job samples now, or will sample first."""
        with self._lock:
            return self._iteration

    @property
    def interrupt_requested(self) -> bool:
        with self._lock:
            return self._interrupt

    def mark(self, state: JobState) -> None:
        with self._lock:
            self._state = state

    def request_interrupt(self) -> JobState:
        with self._lock:
            self._interrupt = True
            return self._state

    def request_skip(self, iteration: int | None = None) -> JobState:
        """Skip ``iteration``, by default the one sampling now (the first one for a queued job)."""
        with self._lock:
            self._skip.add(self._iteration if iteration is None else iteration)
            return self._state

    def should_start(self) -> bool:
        """Checked once when the GPU takes the job: False if it was cancelled while it waited."""
        self._apply(force=True)
        return not self.interrupt_requested

    def poll(self, iteration: int) -> Action:
        with self._lock:
            self._iteration = iteration
        self._apply(force=False)
        with self._lock:
            if self._interrupt:
                return "interrupt"
            return "skip" if iteration in self._skip else "continue"

    def _apply(self, *, force: bool) -> None:
        if self._markers is None:
            return
        seen = self._markers.read(force=force)
        if seen is None:
            return
        cancelled, skip = seen
        with self._lock:
            self._interrupt = self._interrupt or cancelled
            if skip is not None:
                self._skip.add(skip)


class JobControls:
    """The controls of queued, running and recently finished jobs, by job id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobControl] = OrderedDict()

    def add(self, control: JobControl) -> bool:
        """Register a new job; False when a job of that id is still queued or running."""
        with self._lock:
            known = self._jobs.get(control.job_id)
            if known is not None and known.state in ("queued", "running"):
                return False
            self._jobs[control.job_id] = control
            self._jobs.move_to_end(control.job_id)
            self._forget_old()
            return True

    def get(self, job_id: str) -> JobControl | None:
        with self._lock:
            return self._jobs.get(job_id)

    def remove(self, control: JobControl) -> None:
        with self._lock:
            if self._jobs.get(control.job_id) is control:
                del self._jobs[control.job_id]

    def _forget_old(self) -> None:
        finished = [k for k, c in self._jobs.items() if c.state == "finished"]
        for key in finished[: max(0, len(finished) - _REMEMBERED_JOBS)]:
            del self._jobs[key]
