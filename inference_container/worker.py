"""One GPU, one job at a time: a single worker thread behind a bounded waiting queue.

The HTTP layer validates a job before it enters the queue, so the queue only holds work that
can run. When ``max_waiting`` jobs already wait, ``submit`` raises ``Busy`` at once rather than
letting callers pile up behind a GPU that cannot serve them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from inference_container.errors import Busy

log = logging.getLogger(__name__)

_STOP = object()


class SingleWorker:
    def __init__(self, max_waiting: int) -> None:
        self._max_waiting = max_waiting
        self._queue: queue.Queue[Any] = queue.Queue()
        self._waiting = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="gpu-worker", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def submit(self, work: Callable[[], Any]) -> Future:
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise Busy(
                    f"the engine is busy: {self._waiting} job(s) already wait for the GPU "
                    f"(limit {self._max_waiting}); retry shortly"
                )
            self._waiting += 1
        future: Future = Future()
        self._queue.put((work, future))
        return future

    def stop(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            work, future = item
            with self._lock:
                self._waiting -= 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # the caller gets every failure; the worker keeps serving
                future.set_exception(exc)
