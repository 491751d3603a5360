"""The sweeper: every running job reaches a terminal state, even when its worker goes silent or
its container never answers a cancel."""

from __future__ import annotations

import logging
from collections.abc import Callable

from middleware.domain.job import Job
from middleware.ports import Compute, JobStore
from middleware.services.ids import now_us
from middleware.services.job_events import JobEventHandler
from middleware.services.progress_relay import NoProgressRelay, Relay

log = logging.getLogger(__name__)

_PAGE = 100


class JobSweeper:
    def __init__(
        self,
        store: JobStore,
        events: JobEventHandler,
        compute: Compute,
        *,
        silence_s: float,
        cancel_timeout_s: float = 60.0,
        clock_us: Callable[[], int] = now_us,
        relay: Relay | None = None,
    ) -> None:
        self._store = store
        # Where no worker of ours relays progress (AWS), the sweeper reads it before judging a job.
        self._relay = relay or NoProgressRelay()
        self._events = events
        self._compute = compute
        self.silence_s = silence_s
        self.cancel_timeout_s = cancel_timeout_s
        self._clock = clock_us

    def sweep_once(self) -> list[str]:
        """End running jobs whose cancel went unanswered for ``cancel_timeout_s`` (cancelled) and
        jobs with no progress or heartbeat for ``silence_s`` (failed); return their ids."""
        now = self._clock()
        self._relay.relay_queued(_PAGE)
        ended = self._sweep(
            lambda: self._store.find_cancels_unanswered(now - int(self.cancel_timeout_s * 1_000_000), _PAGE),
            "cancel_unanswered",
            f"the container did not answer the cancel within {self.cancel_timeout_s:g} s; "
            "the images sampled so far could not be fetched",
        )
        silent_before = now - int(self.silence_s * 1_000_000)
        ended += self._sweep(
            lambda: self._still_silent(self._store.find_stale_running(silent_before, _PAGE), silent_before),
            "worker_silent",
            f"worker went silent for {self.silence_s:g} s",
        )
        return ended

    def _still_silent(self, found: list[Job], silent_before: int) -> list[Job]:
        """The jobs that stay silent once what their containers published is relayed."""
        silent = []
        for job in found:
            fresh = self._relay.relay(job)
            if not fresh.is_terminal and fresh.heartbeat_at < silent_before:
                silent.append(fresh)
        return silent

    def _sweep(self, find: Callable[[], list[Job]], code: str, reason: str) -> list[str]:
        ended: list[str] = []
        while True:
            found = find()
            progressed = False
            for job in found:
                # A job whose cancel was requested ends cancelled (with the reason), others failed.
                if self._events.fail(job.id, code, reason):
                    ended.append(job.id)
                    progressed = True
                    log.warning("job %s ended: %s", job.id, reason)
                    self._compute.cancel(job.id)
            if len(found) < _PAGE or not progressed:
                return ended
