"""AWS mode's completion path: SageMaker async notifications (via SNS) applied to job records.

Success hands the container's own ``jobs/<id>/result.json`` to the one completion handler; a
container that wrote none (no output store configured) still answered ``/invocations`` with the
result document, which SageMaker stored at the OutputLocation: it is copied to result.json first,
so every later read (result details, history) finds it where local mode puts it. Failure reads
the container's own error answer from the FailureLocation when there is one, else makes
SageMaker's ``failureReason`` readable.

Retries: SNS retries a Lambda that raises, and the function's DLQ keeps what never succeeds. So
a record that can never be applied (malformed) is logged and skipped, while an error reaching
the store (throttling, a network blip) raises once every record was tried; repeating a record is
harmless, since the store refuses to move a finished job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from middleware.domain.job import invocation_key, result_key
from middleware.ports import BlobStore, JobEvents
from middleware.services.async_notifications import (
    AsyncResult,
    NotificationError,
    Reason,
    S3Location,
    container_error,
    parse_record,
    parse_s3_uri,
    readable_reason,
    sns_messages,
)

log = logging.getLogger(__name__)


@dataclass
class CompletionSummary:
    """Records applied, by what they reported (a repeat counts again, though it changed nothing),
    and records skipped as unusable."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "failed": self.failed, "skipped": self.skipped}


class AsyncCompletion:
    """Applies notifications to jobs through ``events``; reads blobs of ``bucket`` only (the one
    ``blobs`` serves), so a location elsewhere is never fetched with our role."""

    def __init__(self, events: JobEvents, blobs: BlobStore, bucket: str) -> None:
        self._events = events
        self._blobs = blobs
        self._bucket = bucket

    def lambda_handler(self, event: Any, context: object = None) -> dict[str, Any]:
        """The Lambda handler's signature over ``handle_sns_event``."""
        return self.handle_sns_event(event)

    def handle_sns_event(self, event: Any) -> dict[str, Any]:
        """A Lambda SNS event: every record applied or skipped; raises the first transient error
        after trying them all, so Lambda retries (and the DLQ catches what keeps failing)."""
        summary = CompletionSummary()
        pending: BaseException | None = None
        try:
            records = sns_messages(event)
        except NotificationError as exc:
            log.error("skipping an event that is not an SNS event: %s", exc)
            summary.skipped += 1
            return summary.as_dict()
        for n, record in records:
            try:
                result = parse_record(record)
            except NotificationError as exc:
                log.error("skipping SNS record %d (%s): %s", n, _message_id(record), exc)
                summary.skipped += 1
                continue
            try:
                self.apply(result)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other records
                log.exception("job %s: could not apply its notification; it will be retried", result.job_id)
                pending = pending or exc
                continue
            if result.succeeded:
                summary.succeeded += 1
            else:
                summary.failed += 1
        if pending is not None:
            raise pending
        return summary.as_dict()

    def apply(self, result: AsyncResult) -> None:
        if result.succeeded:
            self._succeeded(result)
        else:
            reason = self.failure_reason(result)
            self._events.job_failed(result.job_id, reason.code, reason.message)

    # -- success -------------------------------------------------------------------------------

    def _succeeded(self, result: AsyncResult) -> None:
        key = result_key(result.job_id)
        if not self._blobs.exists(key):
            output = self._read(result.output_location)
            if output is None:
                where = f" nor at its output location {result.output_location.uri}" if result.output_location else ""
                self._events.job_failed(
                    result.job_id,
                    "result_missing",
                    f"SageMaker reported the job done, but its result is neither at {key}{where}",
                )
                return
            self._blobs.put_bytes(key, output, "application/json")
        self._events.job_succeeded(result.job_id, key)

    # -- failure -------------------------------------------------------------------------------

    def failure_reason(self, result: AsyncResult) -> Reason:
        """The container's own error answer when SageMaker kept it, else the cleaned-up reason."""
        location = result.failure_location or self._invoked_failure_location(result.job_id)
        stored = self._read(location)
        own = container_error(stored) if stored is not None else None
        return own or readable_reason(result.failure_reason)

    def _invoked_failure_location(self, job_id: str) -> S3Location | None:
        data = self._read(S3Location(self._bucket, invocation_key(job_id)))
        if data is None:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            log.warning("job %s: %s is not JSON; ignoring it", job_id, invocation_key(job_id))
            return None
        return parse_s3_uri(record.get("failure_location")) if isinstance(record, dict) else None

    # -- blobs ---------------------------------------------------------------------------------

    def _read(self, location: S3Location | None) -> bytes | None:
        """The object's bytes; None when there is none to read (absent, elsewhere, or a key our
        store refuses). Anything else (S3 unreachable, throttled) raises: that is transient."""
        if location is None:
            return None
        if location.bucket != self._bucket:
            log.warning("not reading %s: it is outside the bucket %s", location.uri, self._bucket)
            return None
        try:
            return self._blobs.get_bytes(location.key)
        except KeyError:
            return None
        except ValueError as exc:  # the store's key rules
            log.warning("not reading %s: %s", location.uri, exc)
            return None


def _message_id(record: Any) -> str:
    sns = record.get("Sns") if isinstance(record, dict) else None
    value = sns.get("MessageId") if isinstance(sns, dict) else None
    return f"MessageId {value}" if isinstance(value, str) else "no MessageId"
