"""The ports: what the services need from the outside world, as Protocols.

Local mode implements them with SQLite, a folder and worker threads (``adapters/``); AWS mode
with DynamoDB, S3 and SageMaker. The contract suites in ``tests/contract`` run the same tests
against every adapter of a port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

from middleware.domain.job import Job, JobStatus, Progress


class StoreConflict(Exception):
    """A write lost a race (unique key or optimistic version); the caller re-reads and decides."""


# --- Jobs ------------------------------------------------------------------------------------


@runtime_checkable
class JobStore(Protocol):
    """Job records. The domain computes every new state (``middleware.domain.job``); a store only
    persists it, conditionally, so that two writers never both win. DynamoDB maps ``update`` to
    ``PutItem`` with ``ConditionExpression="#status = :prev_status AND #version = :prev_version"``,
    SQLite to ``UPDATE ... WHERE id=? AND status=? AND version=?``."""

    def create(self, job: Job) -> tuple[Job, bool]:
        """Insert ``job``; if ``job.idempotency_key`` is already used by ``job.owner``, return the
        existing job and False instead. Raises ValueError for a duplicate id."""

    def get(self, job_id: str) -> Job | None: ...

    def find_by_idempotency_key(self, owner: str, key: str) -> Job | None: ...

    def list_by_owner(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """The owner's jobs, newest first, and an opaque cursor for the next page (None at the end).
        Raises ValueError for a cursor this store did not produce."""

    def update(self, previous: Job, new: Job) -> bool:
        """Store ``new`` (same id, ``previous.version + 1``) only if the stored job still has
        ``previous.status`` and ``previous.version``; False when that condition failed (the caller
        re-reads and decides). Raises IllegalTransition when the state machine forbids
        ``previous.status -> new.status``, and ValueError when ``new`` is not the next version."""

    def touch(self, job_id: str, at_us: int) -> bool:
        """Record a heartbeat without a new version (no client is woken for it); only while the
        job is not terminal."""

    def find_stale_running(self, older_than_us: int, limit: int = 100) -> list[Job]:
        """Running jobs whose last heartbeat is older than ``older_than_us``."""

    def find_cancels_unanswered(self, requested_before_us: int, limit: int = 100) -> list[Job]:
        """Running jobs whose cancel was requested before ``requested_before_us``."""

    def list_by_status(self, status: JobStatus, limit: int = 100, after_id: str | None = None) -> list[Job]:
        """Jobs in ``status``, oldest first, paged by ``after_id`` (the last id of the previous page)."""


# --- Users and API keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    role: str


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    user: str
    label: str
    created_at: int


@runtime_checkable
class UserStore(Protocol):
    def create_user(self, name: str, role: str) -> User: ...

    def get_user(self, name: str) -> User | None: ...

    def count_users(self) -> int: ...


@runtime_checkable
class ApiKeyStore(Protocol):
    def create_key(self, user: str, label: str = "") -> tuple[ApiKeyInfo, str]:
        """Create a key for ``user``; returns its info and the plaintext key, which is never stored
        (only its sha256) and cannot be shown again."""

    def authenticate(self, key: str) -> User | None:
        """The key's user, or None; compares hashes in constant time."""


# --- Blobs -----------------------------------------------------------------------------------


@runtime_checkable
class BlobStore(Protocol):
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """Raises KeyError when the blob does not exist."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream; raises KeyError when the blob does not exist."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def signed_url(self, key: str, expires_in: int) -> str:
        """A URL anyone may GET until it expires. May be relative to the API's base URL
        (starting with ``/``) when the API itself serves the bytes."""

    def verify_signature(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        """True when ``signature`` is this store's signature of (key, expires) and not expired."""


# --- Compute ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointState:
    name: str
    kind: str
    status: str  # "InService" | "OutOfService" | "Creating" | ...
    detail: str = ""


@runtime_checkable
class JobEvents(Protocol):
    """What compute reports about a job; the services implement it (one completion path for
    local workers and for AWS notifications)."""

    def job_started(self, job_id: str) -> bool:
        """The job reached a worker; False when it should not run (e.g. it was cancelled)."""

    def job_progress(self, job_id: str, progress: Progress) -> None: ...

    def job_heartbeat(self, job_id: str) -> None: ...

    def job_succeeded(self, job_id: str, result_key: str) -> None:
        """The result document (container response shape, ``interrupted`` true when a cancel or
        skip cut sampling short) is in the blob store at ``result_key``."""

    def job_failed(self, job_id: str, code: str, message: str) -> None: ...


@runtime_checkable
class Compute(Protocol):
    def submit(self, job_id: str, request_key: str, endpoint: str | None = None) -> None:
        """Start the job whose document (DESIGN §4) is in the blob store at ``request_key``, on the
        named endpoint, without waiting for it (SageMaker: ``invoke_endpoint_async(InputLocation=
        request_key, InferenceId=job_id)``); None means the default (first configured) endpoint.
        Raises ValueError for an endpoint this compute does not have."""

    def cancel(self, job_id: str) -> None:
        """Stop the job: drop it if it has not started here; if it runs, write the marker
        ``jobs/<id>/cancel`` the container checks between steps (and, where there is one, call its
        interrupt endpoint). The container then answers with the images sampled so far, through
        the normal completion path. Harmless when the job is unknown."""

    def skip(self, job_id: str, iteration: int) -> None:
        """End batch iteration ``iteration`` (0-based) of a running job and go on with the next:
        the marker ``jobs/<id>/skip`` (and, where there is one, the container's skip endpoint)."""

    def endpoints(self) -> list[EndpointState]: ...


# --- Models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    name: str
    type: str  # "checkpoint", ...
    size: int
    sha256: str
    uri: str

    def ref(self) -> dict[str, Any]:
        """The model reference of the job document."""
        return {"name": self.name, "uri": self.uri, "sha256": self.sha256, "size": self.size}


@runtime_checkable
class ModelCatalog(Protocol):
    def list(self, type: str | None = None) -> list[ModelInfo]: ...

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None: ...


# --- Change notification ---------------------------------------------------------------------


class Subscription(Protocol):
    """One reader's interest in one job; use as a context manager."""

    async def wait(self, timeout: float) -> bool:
        """Wait for the next change after subscribing; True when notified, False on timeout."""

    def __enter__(self) -> Subscription: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class ChangeNotifier(Protocol):
    """Wakes long-polling readers when a job changes (in-process locally).

    Readers subscribe first, then read the job, then wait: a change between the read and the
    wait is not missed.
    """

    def notify(self, job_id: str) -> None:
        """Safe to call from any thread."""

    def subscribe(self, job_id: str) -> Subscription:
        """Must be called from inside the event loop that will wait."""
