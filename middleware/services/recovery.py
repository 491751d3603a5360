"""Startup recovery: after a restart, no job is left waiting for a worker that no longer exists.

Choice (see middleware/README.md): jobs still ``queued`` never reached the container, so they are
submitted again, oldest first (their request is still in the blob store). Jobs that were ``running`` may have been half done by the
container, which we can no longer hear from; they are failed with a reason the artist can act on
("middleware restarted while the job was running") rather than silently run twice. A queued job
goes back to the endpoint it was submitted to; when that endpoint is no longer configured, the job
fails with a reason that names it, rather than running somewhere the artist did not choose. A
running job whose cancel was requested ends cancelled rather than failed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from middleware.domain.job import JobStatus, request_key
from middleware.ports import Compute, JobStore
from middleware.services.job_events import JobEventHandler

log = logging.getLogger(__name__)

RESTART_REASON = "middleware restarted while the job was running; generate again"


@dataclass(frozen=True)
class RecoveryReport:
    resubmitted: list[str]
    failed: list[str]  # running jobs, and queued ones that could not go back to their endpoint


def recover_jobs(
    store: JobStore,
    events: JobEventHandler,
    compute: Compute,
    page: int = 200,
    endpoint_names: Collection[str] | None = None,
) -> RecoveryReport:
    """Fail jobs left running, resubmit queued ones to their own endpoint. ``endpoint_names``
    (the configured endpoints; None: do not check) fails queued jobs whose endpoint is gone."""
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
            if endpoint_names is not None and job.endpoint not in endpoint_names:
                configured = ", ".join(endpoint_names) or "none"
                reason = (
                    f"endpoint {job.endpoint!r} is no longer configured (configured: {configured}); "
                    "generate again on one of those"
                )
                if events.fail(job.id, "endpoint_not_configured", reason):
                    failed.append(job.id)
                continue
            try:
                compute.submit(job.id, request_key(job.id), endpoint=job.endpoint)
            except Exception as exc:  # noqa: BLE001 - one refused job must not stop the others
                log.exception("recovery: endpoint %r refused job %s", job.endpoint, job.id)
                if events.fail(
                    job.id, "submit_failed", f"the endpoint {job.endpoint!r} refused the job: {exc}"
                ):
                    failed.append(job.id)
                continue
            resubmitted.append(job.id)
        after = batch[-1].id
    if failed or resubmitted:
        log.info("recovery: %d queued jobs resubmitted, %d jobs failed", len(resubmitted), len(failed))
    return RecoveryReport(resubmitted=resubmitted, failed=failed)
