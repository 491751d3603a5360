"""Inference use cases: submit, read, list, wait for a change, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from middleware.domain.errors import Conflict, FieldError, IdempotencyMismatch, InvalidInput, NotFound
from middleware.domain.generation_rules import validate_generation
from middleware.domain.job import Job, JobStatus, Progress
from middleware.ports import ChangeNotifier, Compute, JobStore, ModelCatalog, User
from middleware.services.ids import new_job_id, now_us
from middleware.services.job_events import JobEventHandler

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 200
# A1111 shows checkpoints as "name.safetensors [0123456789]"; accept that title too.
_TITLE_HASH = re.compile(r"^(?P<name>.+?) \[[0-9a-fA-F]{8,64}\]$")


def request_fingerprint(task: str, payload: dict[str, Any], checkpoint: str, endpoint: str) -> str:
    canonical = json.dumps(
        {"task": task, "payload": payload, "checkpoint": checkpoint, "endpoint": endpoint},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class InferenceService:
    def __init__(
        self,
        store: JobStore,
        catalog: ModelCatalog,
        compute: Compute,
        notifier: ChangeNotifier,
        events: JobEventHandler,
        *,
        endpoint_names: tuple[str, ...] = ("local",),
        clock_us: Callable[[], int] = now_us,
    ) -> None:
        if not endpoint_names:
            raise ValueError("at least one endpoint name is needed")
        self._store = store
        self._catalog = catalog
        self._compute = compute
        self._notifier = notifier
        self._events = events
        self._endpoints = tuple(endpoint_names)
        self._clock = clock_us

    # -- submit ------------------------------------------------------------------------------------

    def submit(
        self,
        user: User,
        task: Any,
        payload: Any,
        checkpoint: Any,
        endpoint: Any = None,
        idempotency_key: str | None = None,
    ) -> tuple[Job, bool]:
        """Validate, store and start a job. Returns (job, created); created is False for a replay
        of an earlier request with the same Idempotency-Key."""
        errors = validate_generation(task, payload)
        if not isinstance(checkpoint, str) or not checkpoint.strip():
            errors.append(FieldError("checkpoint", "must name a checkpoint from GET /v1/models"))
        if endpoint is None:
            endpoint = self._endpoints[0]
        elif endpoint not in self._endpoints:
            errors.append(
                FieldError(
                    "endpoint", f"unknown endpoint {endpoint!r}; available: {', '.join(self._endpoints)}"
                )
            )
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            errors.append(
                FieldError("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters long")
            )
        if errors:
            raise InvalidInput(errors)

        fingerprint = request_fingerprint(task, payload, checkpoint, endpoint)
        if idempotency_key is not None:
            # Cheap path for retries: no catalog lookup, no insert attempt.
            earlier = self._store.find_by_idempotency_key(user.name, idempotency_key)
            if earlier is not None:
                return self._replay(earlier, fingerprint), False

        model = self._catalog.get(_strip_title_hash(checkpoint.strip()))
        if model is None:
            available = [m.name for m in self._catalog.list("checkpoint")]
            listing = (
                ", ".join(available) if available else "none; put .safetensors files in the models folder"
            )
            raise InvalidInput(
                [FieldError("checkpoint", f"unknown checkpoint {checkpoint!r}; available: {listing}")]
            )

        now = self._clock()
        job = Job(
            id=new_job_id(),
            owner=user.name,
            task=task,
            payload=payload,
            checkpoint=model.name,
            models={"checkpoint": model.ref(), "loras": [], "embeddings": []},
            endpoint=endpoint,
            created_at=now,
            updated_at=now,
            heartbeat_at=now,
            progress=Progress("queued"),
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
        stored, created = self._store.create(job)
        if not created:
            return self._replay(stored, fingerprint), False
        try:
            self._compute.submit(stored.document(), endpoint=stored.endpoint)
        except Exception as exc:  # noqa: BLE001 - the job must not stay queued forever
            log.exception("job %s: compute refused the submission", stored.id)
            failed = self._events.fail(
                stored.id, "submit_failed", f"the endpoint {endpoint!r} refused the job: {exc}"
            )
            return failed or stored, True
        return stored, True

    @staticmethod
    def _replay(earlier: Job, fingerprint: str) -> Job:
        if earlier.request_hash and earlier.request_hash != fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was already used for a different request; use a new key for a new job"
            )
        return earlier

    # -- read ----------------------------------------------------------------------------------------

    def get(self, user: User, job_id: str) -> Job:
        job = self._store.get(job_id)
        if job is None or job.owner != user.name:
            # Another user's job is reported exactly like a missing one.
            raise NotFound(f"no inference {job_id!r}")
        return job

    def list(self, user: User, limit: int = 20, cursor: str | None = None) -> tuple[list[Job], str | None]:
        if not 1 <= limit <= 100:
            raise InvalidInput([FieldError("limit", f"must be between 1 and 100 (got {limit})")])
        try:
            return self._store.list_by_owner(user.name, limit, cursor or None)
        except ValueError as exc:
            raise InvalidInput([FieldError("cursor", str(exc))]) from exc

    async def wait_for_change(
        self, user: User, job_id: str, known_version: int | None, timeout: float
    ) -> Job:
        """The job as soon as its version differs from ``known_version`` or it is terminal, else
        after ``timeout`` seconds. Woken by the notifier, not by polling the store."""
        with self._notifier.subscribe(job_id) as subscription:
            job = self.get(user, job_id)
            if known_version is None:
                known_version = job.version
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while job.version == known_version and not job.is_terminal:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await subscription.wait(remaining)
                job = self.get(user, job_id)
        return job

    # -- cancel --------------------------------------------------------------------------------------

    def cancel(self, user: User, job_id: str) -> Job:
        job = self.get(user, job_id)
        if job.is_terminal:
            raise Conflict(
                f"inference {job_id} is already {job.status.value}; only queued or running jobs can be cancelled"
            )
        progress = job.progress
        cancelled = self._events.move(
            job_id,
            JobStatus.CANCELLED,
            progress=Progress("cancelled", progress.step, progress.steps, progress.fraction),
        )
        if cancelled is None:
            job = self.get(user, job_id)
            raise Conflict(
                f"inference {job_id} is already {job.status.value}; only queued or running jobs can be cancelled"
            )
        self._compute.cancel(job_id)
        return cancelled


def _strip_title_hash(name: str) -> str:
    match = _TITLE_HASH.match(name)
    return match.group("name") if match else name
