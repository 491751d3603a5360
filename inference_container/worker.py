"""One GPU, one job at a time: a single worker thread behind a bounded waiting queue.

The HTTP layer validates a job before it enters the queue, so the queue only holds work that
can run. When ``max_waiting`` jobs already wait, ``submit`` raises ``Busy`` at once rather than
letting callers pile up behind a GPU that cannot serve them. A waiting job can be withdrawn
(interrupted before it started): its caller gets the given result at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from inference_container.errors import Busy

log = logging.getLogger(__name__)


class SingleWorker:
    def __init__(self, max_waiting: int) -> None:
        self._max_waiting = max_waiting
        self._queue: deque[tuple[str, Callable[[], Any], Future]] = deque()
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="gpu-worker", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._queue)

    def submit(self, key: str, work: Callable[[], Any]) -> Future:
        with self._changed:
            if len(self._queue) >= self._max_waiting:
                raise Busy(
                    f"the engine is busy: {len(self._queue)} job(s) already wait for the GPU "
                    f"(limit {self._max_waiting}); retry shortly"
                )
            future: Future = Future()
            self._queue.append((key, work, future))
            self._changed.notify()
        return future

    def withdraw(self, key: str, result: Callable[[], Any]) -> bool:
        """Take the waiting job ``key`` out of the queue and answer it with ``result()``.

        False when it is not waiting (it already runs, finished, or was never queued).
        """
        with self._changed:
            for item in self._queue:
                if item[0] == key:
                    self._queue.remove(item)
                    break
            else:
                return False
        future = item[2]
        try:
            future.set_result(result())
        except BaseException as exc:
            future.set_exception(exc)
        return True

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                _key, work, future = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # the caller gets every failure; the worker keeps serving
                future.set_exception(exc)
