"""Startup recovery: after a restart, no job is left waiting for a worker that no longer exists.

Choice (see middleware/README.md): jobs still ``queued`` never reached the container, so they are
submitted again, oldest first. Jobs that were ``running`` may have been half done by the
container, which we can no longer hear from; they are failed with a reason the artist can act on
("middleware restarted while the job was running") rather than silently run twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from middleware.domain.job import JobStatus
from middleware.ports import Compute, JobStore
from middleware.services.job_events import JobEventHandler

log = logging.getLogger(__name__)

RESTART_REASON = "middleware restarted while the job was running; generate again"


@dataclass(frozen=True)
class RecoveryReport:
    resubmitted: list[str]
    failed: list[str]


def recover_jobs(
    store: JobStore, events: JobEventHandler, compute: Compute, page: int = 200
) -> RecoveryReport:
    failed: list[str] = []
    after: str | None = None
    while batch := store.list_by_status(JobStatus.RUNNING, limit=page, after_id=after):
        for job in batch:
            if events.fail(job.id, "middleware_restarted", RESTART_REASON):
                failed.append(job.id)
        after = batch[-1].id
    resubmitted: list[str] = []
    after = None
    while batch := store.list_by_status(JobStatus.QUEUED, limit=page, after_id=after):
        for job in batch:
            compute.submit(job.document())
            resubmitted.append(job.id)
        after = batch[-1].id
    if failed or resubmitted:
        log.info(
            "recovery: %d queued jobs resubmitted, %d running jobs failed", len(resubmitted), len(failed)
        )
    return RecoveryReport(resubmitted=resubmitted, failed=failed)
