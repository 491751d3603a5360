"""The one completion path: what compute reports about a job, applied to the job record.

Local workers call it directly; in AWS mode the SNS/EventBridge Lambda calls the same methods.
The domain computes each new state; the store persists it only over the version it was computed
from, and a lost race is retried on a fresh read. Every method is idempotent: a late or
duplicated report never moves a terminal job (the domain refuses it, and we drop the report).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from middleware.domain import job as jobs
from middleware.domain.errors import IllegalTransition
from middleware.domain.job import Job, JobError, JobStatus, Progress
from middleware.ports import BlobStore, ChangeNotifier, JobStore
from middleware.services.ids import now_us

log = logging.getLogger(__name__)

_MAX_RACES = 20


class JobEventHandler:
    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        notifier: ChangeNotifier,
        *,
        heartbeat_interval_s: float = 2.0,
        clock_us: Callable[[], int] = now_us,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._notifier = notifier
        self._heartbeat_us = int(heartbeat_interval_s * 1_000_000)
        self._clock = clock_us
        self._lock = threading.Lock()
        # Last progress written and last heartbeat per running job, so that identical polls
        # do not create new versions (which would wake every long-polling client).
        self._last: dict[str, tuple[Progress, int]] = {}

    # -- state changes ---------------------------------------------------------------------------

    def apply(self, job_id: str, change: Callable[[Job, int], Job]) -> Job | None:
        """Apply the domain function ``change(job, now_us)`` to the stored job, retrying lost races.

        Returns the new job, or None when the job is missing or the domain refuses the change
        (e.g. it is already terminal): reports about finished jobs are dropped, not errors.
        """
        for _ in range(_MAX_RACES):
            job = self._store.get(job_id)
            if job is None:
                return None
            try:
                new = change(job, self._clock())
            except IllegalTransition:
                return None
            if new is job:
                return job
            if self._store.update(job, new):
                if new.is_terminal:
                    with self._lock:
                        self._last.pop(job_id, None)
                self._notifier.notify(job_id)
                return new
        log.warning("job %s: gave up applying a change after %d lost races", job_id, _MAX_RACES)
        return None

    def fail(self, job_id: str, code: str, message: str) -> Job | None:
        """Fail the job; a job whose cancel was requested ends cancelled instead, with the reason."""
        error = JobError(code, message)

        def change(job: Job, now: int) -> Job:
            if job.cancel_requested:
                return jobs.cancelled(job, now, error=error)
            return jobs.failed(job, error, now)

        return self.apply(job_id, change)

    # -- JobEvents port -----------------------------------------------------------------------------

    def job_started(self, job_id: str) -> bool:
        job = self.apply(job_id, jobs.started)
        if job is None:
            return False
        with self._lock:
            self._last[job_id] = (job.progress, job.heartbeat_at)
        return True

    def job_progress(self, job_id: str, progress: Progress) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(job_id)
        if last is not None and last[0] == progress:
            if now - last[1] >= self._heartbeat_us:
                self._store.touch(job_id, now)
                with self._lock:
                    self._last[job_id] = (progress, now)
            return
        job = self.apply(job_id, lambda job, at: jobs.progressed(job, progress, at))
        if job is None:
            return
        with self._lock:
            self._last[job_id] = (progress, now)

    def job_heartbeat(self, job_id: str) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(job_id)
        if last is not None and now - last[1] < self._heartbeat_us:
            return
        if self._store.touch(job_id, now):
            with self._lock:
                self._last[job_id] = (last[0] if last else Progress("starting"), now)

    def job_succeeded(self, job_id: str, result_key: str) -> None:
        """Read the result document. An interrupted result of a job whose cancel was requested ends
        it cancelled, with the images sampled so far; a complete one (the container finished
        before it saw the cancel) ends it succeeded."""
        job = self._store.get(job_id)
        if job is None or job.is_terminal:
            log.info(
                "job %s: ignoring a result for a %s job", job_id, job.status.value if job else "missing"
            )
            return
        try:
            summary = jobs.summarize_result(job_id, self._read_document(result_key))
        except (KeyError, ValueError) as exc:
            self.fail(job_id, "bad_result", f"the job's result at {result_key} could not be read: {exc}")
            return

        if job.status is JobStatus.QUEUED:
            # AWS may report success before anything marked the job running.
            self.apply(job_id, jobs.started)

        def change(job: Job, now: int) -> Job:
            if summary["interrupted"] and job.cancel_requested and job.status is JobStatus.RUNNING:
                return jobs.cancelled(job, now, result=summary)
            return jobs.succeeded(job, summary, now)

        self.apply(job_id, change)

    def job_failed(self, job_id: str, code: str, message: str) -> None:
        if self.fail(job_id, code, message) is None:
            log.info("job %s: ignoring a failure report (%s) for a finished or missing job", job_id, code)

    # -- helpers -----------------------------------------------------------------------------------

    def _read_document(self, key: str) -> dict[str, Any]:
        document = json.loads(self._blobs.get_bytes(key))
        if not isinstance(document, dict):
            raise ValueError("result is not a JSON object")
        return document

    def result_detail(self, job: Job) -> Job:
        """``job`` with the result details that were too large for the record, read back from
        result.json; unchanged when it has them all (or the document cannot be read)."""
        if not job.needs_result_detail:
            return job
        assert job.result_summary is not None
        key = str(job.result_summary["detail_key"])
        try:
            return jobs.with_result_detail(job, self._read_document(key))
        except (KeyError, ValueError):
            log.warning("job %s: result details at %s could not be read", job.id, key)
            return job
