"""The ports: what the services need from the outside world, as Protocols.

Local mode implements them with SQLite, a folder and worker threads (``adapters/``); AWS mode
with DynamoDB, S3 and SageMaker. The contract suites in ``tests/contract`` run the same tests
against every adapter of a port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

from middleware.domain.job import Job, JobStatus, Progress
from middleware.domain.model_library import ModelImport, ModelRecord, Upload


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


@dataclass(frozen=True)
class ReceivedPart:
    number: int
    size: int
    etag: str


@runtime_checkable
class MultipartBlobs(Protocol):
    """Uploads straight into the blob store in parts (model uploads). The folder store serves
    its own signed part URLs; S3 presigns ``upload_part``."""

    def start_multipart(self, key: str, upload_id: str) -> str:
        """Begin an upload to ``key`` for the library's ``upload_id``; returns the store's
        handle for it (the folder store uses ``upload_id``, S3 its own UploadId)."""

    def part_url(self, key: str, handle: str, number: int, expires_in: int) -> str:
        """A URL the uploader PUTs part ``number`` to (may be relative to the API base)."""

    def list_parts(self, key: str, handle: str) -> list[ReceivedPart]: ...

    def complete_multipart(self, key: str, handle: str, parts: list[ReceivedPart]) -> str | None:
        """Assemble ``parts`` (in order) into the object at ``key``; the parts are freed.
        Returns the object's sha256 when the store worked it out while the parts came in (the
        folder store), else None (the library then reads the object back to hash it)."""

    def abort_multipart(self, key: str, handle: str) -> None:
        """Free every part; harmless when the upload is unknown."""

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Store what ``stream`` yields at ``key`` without holding it in memory (imports)."""

    def move(self, source_key: str, key: str) -> None:
        """Put the object at ``source_key`` at ``key`` instead (a rename, or a server-side copy)."""


@runtime_checkable
class ModelSource(Protocol):
    """Where imports read from: https:// and s3:// URLs, with the host rules applied."""

    def open(self, url: str) -> tuple[BinaryIO, int | None]:
        """A stream of the URL's bytes and their length when the source says it; raises
        ValueError with a reason a person can act on (refused host, HTTP status, ...)."""


class PartSink(Protocol):
    """One part being received (the folder store's part PUT route), written to disk as it comes."""

    def write(self, chunks: Iterable[bytes]) -> None:
        """Append these chunks to the part (handed over a few MiB at a time)."""

    def commit(self) -> str:
        """Keep the part; returns its ETag (quoted, as S3 answers)."""

    def discard(self) -> None: ...


@runtime_checkable
class PartReceiver(Protocol):
    """A blob store that receives upload parts through the middleware (local mode)."""

    def verify_part_signature(self, handle: str, number: int, expires: int, signature: str) -> bool: ...

    def open_part_sink(self, handle: str, number: int, offset: int) -> PartSink:
        """Where part ``number``, starting ``offset`` bytes into the object, is written."""


@runtime_checkable
class ModelLibraryStore(Protocol):
    """Model records, uploads and imports (``middleware.domain.model_library``)."""

    def create_model(self, record: ModelRecord) -> None:
        """Raises StoreConflict when ``record.owner`` already has a model of that type and name."""

    def get_model(self, model_id: str) -> ModelRecord | None: ...

    def find_model(self, owner: str, type: str, name: str) -> ModelRecord | None: ...

    def models_with_sha256(self, sha256: str) -> list[ModelRecord]: ...

    def find_visible(self, viewer: str, type: str, name: str) -> list[ModelRecord]:
        """Models of ``type`` named ``name`` that ``viewer`` owns or that are public."""

    def list_models(
        self,
        viewer: str | None,
        *,
        type: str | None = None,
        visibility: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        """Models ``viewer`` may see (their own and public ones; every model when None), newest
        first, and the cursor of the next page. Raises ValueError for a foreign cursor."""

    def set_visibility(self, model_id: str, visibility: str) -> None: ...

    def delete_model(self, model_id: str) -> None: ...

    def create_upload(self, upload: Upload) -> tuple[Upload, bool]:
        """Insert; when ``upload.idempotency_key`` is already used by its owner, return that
        upload and False."""

    def get_upload(self, upload_id: str) -> Upload | None: ...

    def update_upload(self, previous: Upload, new: Upload) -> bool:
        """Store ``new`` only if the stored upload still has ``previous.status``."""

    def create_import(self, job: ModelImport) -> None: ...

    def get_import(self, import_id: str) -> ModelImport | None: ...

    def update_import(self, job: ModelImport) -> None: ...


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
