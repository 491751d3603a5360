"""ChangeNotifier for one process: asyncio events woken from any thread.

Long-polling requests subscribe to a job id; the services call ``notify`` after each write that
changes the job. No polling loop: a waiter sleeps on its event until a notify or its timeout.
"""

from __future__ import annotations

import asyncio
import threading


class _Subscription:
    def __init__(self, notifier: InProcessNotifier, job_id: str) -> None:
        self._notifier = notifier
        self.job_id = job_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the waiter's loop has closed; nobody is listening any more
            pass

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self.event.clear()
        return True

    def __enter__(self) -> _Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self._notifier._remove(self)


class InProcessNotifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[_Subscription]] = {}

    def subscribe(self, job_id: str) -> _Subscription:
        sub = _Subscription(self, job_id)
        with self._lock:
            self._subscribers.setdefault(job_id, set()).add(sub)
        return sub

    def _remove(self, sub: _Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[sub.job_id]

    def notify(self, job_id: str) -> None:
        with self._lock:
            subs = self._subscribers.get(job_id)
            if not subs:
                return
            targets = list(subs)
        for sub in targets:
            sub.wake()

    def subscriber_count(self, job_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(job_id, ()))
