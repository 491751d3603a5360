"""Progress of the running job and of jobs waiting behind it, shared by worker and HTTP handlers."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from inference_container.engine.types import Progress

# Finished jobs stay visible for a while so a caller that polls just after the end still sees "done".
_REMEMBERED_JOBS = 64


class ProgressBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = Progress(job_id=None, phase="idle")
        self._jobs: OrderedDict[str, Progress] = OrderedDict()

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

    def current(self) -> Progress:
        with self._lock:
            return self._current

    def of_job(self, job_id: str) -> Progress | None:
        with self._lock:
            return self._jobs.get(job_id)
