"""ChangeNotifier for processes that share no memory (AWS Lambda): a waiter re-reads instead of
being woken.

Whoever changes a job may be another Lambda instance (the SNS completion handler, another API
request), so ``notify`` cannot reach the reader. Instead each ``wait`` looks at once and then every
``interval_s``: it re-reads the record, relays what the container published (``ProgressRelay``)
and compares the job's version; a version other than the one seen
when the reader subscribed is a change. A wait never lasts longer than ``max_wait_s``, which stays
below API Gateway's 29 s limit whatever timeout the caller asks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from middleware.domain.job import Job
from middleware.ports import JobStore

# API Gateway ends a request after 29 s; leave room for the read and the answer.
MAX_WAIT_S = 25.0


class _PollingSubscription:
    def __init__(self, notifier: PollingNotifier, job_id: str, seen: int | None) -> None:
        self._notifier = notifier
        self.job_id = job_id
        self._seen = seen

    async def wait(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(timeout, self._notifier.max_wait_s))
        first = True
        while True:
            if not first:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                await asyncio.sleep(min(self._notifier.interval_s, remaining))
            first = False
            # The look does blocking I/O (DynamoDB, S3): off the event loop.
            version = await asyncio.to_thread(self._notifier.look, self.job_id)
            if version != self._seen:
                self._seen = version
                return True
            if loop.time() >= deadline:
                return False

    def __enter__(self) -> _PollingSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class PollingNotifier:
    def __init__(
        self,
        store: JobStore,
        relay: Callable[[Job], Job] | None = None,
        *,
        interval_s: float = 1.0,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        """``relay(job)`` reports what the job's container published and returns the job as
        stored afterwards (``ProgressRelay.relay``); without it only the record is re-read."""
        if interval_s <= 0:
            raise ValueError(f"the polling interval must be positive (got {interval_s})")
        if not 0 < max_wait_s < 29:
            raise ValueError(f"a wait must stay below API Gateway's 29 s limit (got {max_wait_s})")
        self._store = store
        self._relay = relay
        self.interval_s = interval_s
        self.max_wait_s = max_wait_s

    def notify(self, job_id: str) -> None:
        """Nothing to do: readers re-read (they may live in another process)."""

    def subscribe(self, job_id: str) -> _PollingSubscription:
        # The version stored now is the baseline: the reader reads the job after subscribing, so
        # a change between its read and its wait is not missed. A plain record read (no relay),
        # cheap enough to make on the event loop.
        job = self._store.get(job_id)
        return _PollingSubscription(self, job_id, job.version if job else None)

    def look(self, job_id: str) -> int | None:
        """Relay the job's progress and return its stored version (None when it does not exist)."""
        job = self._store.get(job_id)
        if job is not None and not job.is_terminal and self._relay is not None:
            job = self._relay(job)
        return job.version if job else None
