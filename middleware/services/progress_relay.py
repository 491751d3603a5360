"""Progress of jobs that no worker of ours watches (AWS mode): read from the blob store, relayed
to the job record.

On SageMaker async the container publishes ``<output.prefix>progress.json`` (the document its
``GET /progress?job_id=`` answers) and ``<output.prefix>preview.jpg`` into the bucket. Whoever
looks at a job (a reader's GET, a long-poll tick, the sweeper) hands it to ``ProgressRelay.relay``,
which reports what the document says beyond what the record holds through the one completion
path (``JobEvents``): ``job_started`` for a queued job the container has begun, ``job_progress``
for new progress, ``job_heartbeat`` when the document was written after the record's last
heartbeat (a document with ``updated_at``, Unix seconds). Identical reads write nothing, so
readers polling the same job never create versions (which would wake every long-poller).

Local mode has workers that relay ``GET /progress`` themselves; it wires ``NoProgressRelay``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from middleware.domain.job import Job, JobStatus, Progress, output_prefix
from middleware.ports import BlobStore, JobEvents, JobStore

log = logging.getLogger(__name__)

PROGRESS_DOCUMENT = "progress.json"
# Phases in which the container has not begun the job: the record stays queued.
_WAITING_PHASES = frozenset({"queued", "idle"})
# Larger than any progress document (the container leaves the preview image out of it, but an
# older one inlined it as base64: still well under this).
MAX_DOCUMENT_BYTES = 1024 * 1024


def progress_key(job_id: str) -> str:
    return f"{output_prefix(job_id)}{PROGRESS_DOCUMENT}"


class Relay(Protocol):
    def relay(self, job: Job) -> Job:
        """``job`` as stored after relaying what its container published (``job`` itself when
        there was nothing new)."""

    def relay_queued(self, limit: int = 100) -> int:
        """Relay up to ``limit`` queued jobs; how many changed."""


class NoProgressRelay:
    """For a mode whose workers relay progress themselves."""

    def relay(self, job: Job) -> Job:
        return job

    def relay_queued(self, limit: int = 100) -> int:
        return 0


class ProgressRelay:
    def __init__(self, store: JobStore, blobs: BlobStore, events: JobEvents) -> None:
        self._store = store
        self._blobs = blobs
        self._events = events

    def relay(self, job: Job) -> Job:
        if job.is_terminal:
            return job
        document = self._read(job.id)
        if document is None:
            return job
        progress = Progress.from_dict(document)
        if progress.phase in _WAITING_PHASES:
            return job
        changed = False
        if job.status is JobStatus.QUEUED:
            if not self._events.job_started(job.id):
                return self._store.get(job.id) or job
            changed = True
            job = self._store.get(job.id) or job
        # The record shows "cancelling" over whatever the container says while a cancel is pending.
        shown = progress.with_phase("cancelling") if job.cancel_requested else progress
        if job.progress != shown:
            self._events.job_progress(job.id, progress)
            changed = True
        elif _written_at_us(document) > job.heartbeat_at:
            self._events.job_heartbeat(job.id)
            changed = True
        if not changed:
            return job
        return self._store.get(job.id) or job

    def relay_queued(self, limit: int = 100) -> int:
        changed = 0
        for job in self._store.list_by_status(JobStatus.QUEUED, limit):
            if self.relay(job) is not job:
                changed += 1
        return changed

    def _read(self, job_id: str) -> dict[str, Any] | None:
        key = progress_key(job_id)
        try:
            data = self._blobs.get_bytes(key)
        except KeyError:
            return None  # the container has not taken the job yet
        if len(data) > MAX_DOCUMENT_BYTES:
            log.warning("job %s: ignoring an oversized %s (%d bytes)", job_id, key, len(data))
            return None
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            # A half-written or foreign object: the next read may see a whole one.
            log.info("job %s: %s is not JSON; ignored", job_id, key)
            return None
        if not isinstance(document, dict):
            return None
        if document.get("job_id") not in (None, job_id):
            log.warning("job %s: %s describes job %r; ignored", job_id, key, document.get("job_id"))
            return None
        return document


def _written_at_us(document: dict[str, Any]) -> int:
    """When the container wrote the document (its ``updated_at``, Unix seconds), 0 if unknown."""
    value = document.get("updated_at")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value * 1_000_000) if value > 0 else 0
