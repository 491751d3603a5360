"""The current job's progress, shared between the worker thread and the HTTP handlers."""

from __future__ import annotations

import threading

from inference_container.engine.types import Progress


class ProgressBoard:
    """Holds the latest progress report; reads and writes are atomic under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = Progress(job_id=None, phase="idle")

    def report(self, progress: Progress) -> None:
        with self._lock:
            self._current = progress

    def current(self) -> Progress:
        with self._lock:
            return self._current
