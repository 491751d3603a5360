"""The one completion path: what compute reports about a job, applied to the job record.

Local workers call it directly; in AWS mode the SNS/EventBridge Lambda calls the same methods.
Every method is idempotent: a late or duplicated report never moves a terminal job (the store
refuses it, and we do not retry a refusal once the job is terminal).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from middleware.domain.job import Job, JobError, JobStatus, Progress, can_transition
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

    def move(self, job_id: str, to_status: JobStatus, **changes: Any) -> Job | None:
        """Move the job to ``to_status`` from whatever it is now, retrying lost races.

        Returns the new job, or None when the job is missing or already terminal (or the state
        machine forbids the move): reports about finished jobs are dropped, not errors.
        """
        for _ in range(_MAX_RACES):
            job = self._store.get(job_id)
            if job is None or job.is_terminal:
                return None
            if not can_transition(job.status, to_status):
                return None
            new = self._store.transition(job.id, job.status, job.version, {"status": to_status, **changes})
            if new is not None:
                if new.is_terminal:
                    with self._lock:
                        self._last.pop(job_id, None)
                self._notifier.notify(job_id)
                return new
        log.warning("job %s: gave up moving to %s after %d lost races", job_id, to_status.value, _MAX_RACES)
        return None

    def fail(self, job_id: str, code: str, message: str) -> Job | None:
        current = self._store.get(job_id)
        progress = current.progress if current else Progress()
        return self.move(
            job_id,
            JobStatus.FAILED,
            error=JobError(code, message),
            progress=Progress("failed", progress.step, progress.steps, progress.fraction),
        )

    # -- JobEvents port -----------------------------------------------------------------------------

    def job_started(self, job_id: str) -> bool:
        now = self._clock()
        job = self.move(job_id, JobStatus.RUNNING, progress=Progress("starting"), heartbeat_at=now)
        if job is None:
            return False
        with self._lock:
            self._last[job_id] = (job.progress, now)
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
        job = self._store.update_progress(job_id, progress)
        if job is None:
            return
        with self._lock:
            self._last[job_id] = (progress, now)
        self._notifier.notify(job_id)

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
        job = self._store.get(job_id)
        if job is None or job.is_terminal:
            log.info(
                "job %s: ignoring a success report for a %s job",
                job_id,
                job.status.value if job else "missing",
            )
            return
        try:
            result = self._read_result(result_key)
        except (KeyError, ValueError) as exc:
            self.fail(job_id, "bad_result", f"the job's result at {result_key} could not be read: {exc}")
            return
        if job.status is JobStatus.QUEUED:
            # AWS may report success before anything marked the job running.
            self.move(job_id, JobStatus.RUNNING)
        steps = job.progress.steps
        self.move(job_id, JobStatus.SUCCEEDED, result=result, progress=Progress("done", steps, steps, 1.0))

    def job_failed(self, job_id: str, code: str, message: str) -> None:
        if self.fail(job_id, code, message) is None:
            log.info("job %s: ignoring a failure report (%s) for a finished or missing job", job_id, code)

    # -- helpers -----------------------------------------------------------------------------------

    def _read_result(self, result_key: str) -> dict[str, Any]:
        document = json.loads(self._blobs.get_bytes(result_key))
        if not isinstance(document, dict):
            raise ValueError("result is not a JSON object")
        output = document.get("output") or {}
        keys = [str(img["key"]) for img in output.get("images", []) if isinstance(img, dict) and "key" in img]
        info = document.get("info") or ""
        if not isinstance(info, str):
            info = json.dumps(info)
        infotexts: list[str] = []
        try:
            parsed = json.loads(info) if info else {}
            if isinstance(parsed, dict) and isinstance(parsed.get("infotexts"), list):
                infotexts = [str(t) for t in parsed["infotexts"]]
        except ValueError:
            pass
        return {
            "images": [{"index": i, "key": key} for i, key in enumerate(keys)],
            "parameters": document.get("parameters") or {},
            "info": info,
            "infotexts": infotexts,
        }
