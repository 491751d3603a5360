"""The sweeper: every running job reaches a terminal state, even when its worker goes silent."""

from __future__ import annotations

import logging
from collections.abc import Callable

from middleware.ports import Compute, JobStore
from middleware.services.ids import now_us
from middleware.services.job_events import JobEventHandler

log = logging.getLogger(__name__)


class JobSweeper:
    def __init__(
        self,
        store: JobStore,
        events: JobEventHandler,
        compute: Compute,
        *,
        silence_s: float,
        clock_us: Callable[[], int] = now_us,
    ) -> None:
        self._store = store
        self._events = events
        self._compute = compute
        self.silence_s = silence_s
        self._clock = clock_us

    def sweep_once(self) -> list[str]:
        """Fail running jobs with no progress or heartbeat for ``silence_s``; return their ids."""
        cutoff = self._clock() - int(self.silence_s * 1_000_000)
        failed: list[str] = []
        while True:
            stale = self._store.find_stale_running(cutoff, limit=100)
            progressed = False
            for job in stale:
                if self._events.fail(job.id, "worker_silent", f"worker went silent for {self.silence_s:g} s"):
                    failed.append(job.id)
                    progressed = True
                    log.warning("job %s failed: worker went silent for %g s", job.id, self.silence_s)
                    self._compute.cancel(job.id)
            if len(stale) < 100 or not progressed:
                return failed
