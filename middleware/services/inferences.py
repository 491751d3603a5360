"""Inference use cases: submit, read, list, wait for a change, cancel, skip."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from middleware.domain import job as jobs
from middleware.domain.errors import Conflict, FieldError, IdempotencyMismatch, InvalidInput, NotFound
from middleware.domain.generation_rules import validate_generation
from middleware.domain.job import Job, JobStatus
from middleware.ports import BlobStore, ChangeNotifier, Compute, JobStore, ModelCatalog, User
from middleware.services.checkpoints import resolve_checkpoint
from middleware.services.ids import new_job_id, now_us
from middleware.services.job_events import JobEventHandler
from middleware.services.model_refs import resolve_extra_models
from middleware.services.progress_relay import NoProgressRelay, Relay

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 200
OVERRIDE_FIELD = "payload.override_settings.sd_model_checkpoint"


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
        blobs: BlobStore,
        catalog: ModelCatalog,
        compute: Compute,
        notifier: ChangeNotifier,
        events: JobEventHandler,
        *,
        endpoint_names: tuple[str, ...] | Callable[[], Sequence[str]] = ("local",),
        clock_us: Callable[[], int] = now_us,
        relay: Relay | None = None,
        max_wait_s: float | None = None,
    ) -> None:
        """``relay`` reads progress that no worker of ours reports (AWS); ``max_wait_s`` caps a
        long-poll below what the gateway in front allows (API Gateway ends requests at 29 s).
        ``endpoint_names`` may be a function of the current names (endpoints created through the
        API), asked at each submit; the first name is the default."""
        if not callable(endpoint_names) and not endpoint_names:
            raise ValueError("at least one endpoint name is needed")
        self._store = store
        self._blobs = blobs
        self._catalog = catalog
        self._compute = compute
        self._notifier = notifier
        self._events = events
        fixed = () if callable(endpoint_names) else tuple(endpoint_names)
        self._endpoint_names: Callable[[], Sequence[str]] = (
            endpoint_names if callable(endpoint_names) else lambda: fixed
        )
        self._clock = clock_us
        self._relay = relay or NoProgressRelay()
        self._max_wait = max_wait_s

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
        checkpoint, checkpoint_field = _checkpoint_named(checkpoint, payload)
        if checkpoint is None:
            errors.append(
                FieldError(
                    checkpoint_field,
                    f"must name a checkpoint from GET /v1/models (or set {OVERRIDE_FIELD}, as A1111 does)",
                )
            )
        available = tuple(self._endpoint_names())
        if not available:
            errors.append(
                FieldError("endpoint", "no endpoint exists yet; an admin creates one with POST /v1/endpoints")
            )
        elif endpoint is None:
            endpoint = available[0]
        elif endpoint not in available:
            errors.append(
                FieldError("endpoint", f"unknown endpoint {endpoint!r}; available: {', '.join(available)}")
            )
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            errors.append(
                FieldError("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters long")
            )
        if errors:
            raise InvalidInput(errors)
        assert checkpoint is not None

        fingerprint = request_fingerprint(task, payload, checkpoint, endpoint)
        if idempotency_key is not None:
            # Cheap path for retries: no catalog lookup, no insert attempt.
            earlier = self._store.find_by_idempotency_key(user.name, idempotency_key)
            if earlier is not None:
                return self._replay(earlier, fingerprint), False

        catalog = self._catalog_for(user)
        model = resolve_checkpoint(catalog, checkpoint, checkpoint_field)
        # LoRA tags, embedding words and sd_vae become exact references (unknown ones refused here).
        extra_models = resolve_extra_models(catalog, payload)
        job = jobs.new_job(
            id=new_job_id(),
            owner=user.name,
            task=task,
            payload=payload,
            checkpoint=model.name,
            checkpoint_sha256=model.sha256,
            endpoint=endpoint,
            now_us=self._clock(),
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
        models = {"checkpoint": model.ref(), **extra_models}
        document = jobs.request_document(job.id, task, payload, models)
        key = jobs.request_key(job.id)
        # The request first: a record never exists without it. ensure_ascii keeps a lone
        # surrogate in a prompt from making the bytes unencodable.
        self._blobs.put_bytes(key, json.dumps(document, separators=(",", ":")).encode(), "application/json")
        try:
            stored, created = self._store.create(job)
        except BaseException:
            self._blobs.delete(key)  # no orphaned request for a record that was never written
            raise
        if not created:
            self._blobs.delete(key)  # a concurrent retry won: its own request is the one kept
            return self._replay(stored, fingerprint), False
        try:
            self._compute.submit(stored.id, key, endpoint=stored.endpoint)
        except Exception as exc:  # noqa: BLE001 - the job must not stay queued forever
            log.exception("job %s: compute refused the submission", stored.id)
            failed = self._events.fail(
                stored.id, "submit_failed", f"the endpoint {endpoint!r} refused the job: {exc}"
            )
            return failed or stored, True
        return stored, True

    def _catalog_for(self, user: User) -> ModelCatalog:
        """The catalog as ``user`` sees it: a library catalog offers ``for_user`` (their private
        models and public ones); a plain catalog is the same for everyone."""
        view = getattr(self._catalog, "for_user", None)
        return view(user.name) if callable(view) else self._catalog

    @staticmethod
    def _replay(earlier: Job, fingerprint: str) -> Job:
        if earlier.request_hash and earlier.request_hash != fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was already used for a different request; use a new key for a new job"
            )
        return earlier

    # -- read ----------------------------------------------------------------------------------------

    def get(self, user: User, job_id: str) -> Job:
        """The job, with the result details its record had no room for read from result.json."""
        job = self._own(user, job_id)
        if not job.is_terminal:
            job = self._relay.relay(job)
        return self._events.result_detail(job)

    def _own(self, user: User, job_id: str) -> Job:
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
        if self._max_wait is not None:
            timeout = min(timeout, self._max_wait)
        with self._notifier.subscribe(job_id) as subscription:
            job = self._own(user, job_id)
            if known_version is None:
                known_version = job.version
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while job.version == known_version and not job.is_terminal:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await subscription.wait(remaining)
                job = self._own(user, job_id)
        return self._events.result_detail(job)

    # -- cancel and skip ----------------------------------------------------------------------------

    def cancel(self, user: User, job_id: str) -> Job:
        """A queued job is cancelled at once. A running one is marked cancel-requested (still
        running, phase "cancelling") and the container is told; it ends cancelled, with the images
        sampled so far, when the container's result arrives (or when the sweeper stops waiting).
        Raises NotFound, or Conflict when the job is already finished."""
        self._own(user, job_id)

        def change(job: Job, now: int) -> Job:
            if job.status is JobStatus.QUEUED:
                return jobs.cancelled(job, now)
            return jobs.cancel_requested(job, now)

        new = self._events.apply(job_id, change)
        if new is None:
            job = self._own(user, job_id)
            raise Conflict(
                f"inference {job_id} is already {job.status.value}; only queued or running jobs can be cancelled"
            )
        self._compute.cancel(job_id)
        return new

    def skip(self, user: User, job_id: str) -> Job:
        """End the running batch iteration (the one the job's progress names) and go on with the
        next, as A1111's Skip does. Raises NotFound, or Conflict when the job is not running or
        is being cancelled."""
        job = self._own(user, job_id)
        if job.status is not JobStatus.RUNNING:
            raise Conflict(f"inference {job_id} is {job.status.value}; only a running job can skip")
        if job.cancel_requested:
            raise Conflict(f"inference {job_id} is being cancelled; there is nothing left to skip")
        self._compute.skip(job_id, job.progress.iteration)
        return job


def _checkpoint_named(checkpoint: Any, payload: Any) -> tuple[str | None, str]:
    """The checkpoint the request names and the field it came from: ``checkpoint``, else (as
    A1111 API clients send it) ``payload.override_settings.sd_model_checkpoint``."""
    if isinstance(checkpoint, str) and checkpoint.strip():
        return checkpoint, "checkpoint"
    overrides = payload.get("override_settings") if isinstance(payload, dict) else None
    named = overrides.get("sd_model_checkpoint") if isinstance(overrides, dict) else None
    if checkpoint is None and isinstance(named, str) and named.strip():
        return named, OVERRIDE_FIELD
    return None, "checkpoint"
