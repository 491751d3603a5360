"""In-memory fakes of the middleware's ports, for unit tests of the services.

They follow the same contracts as the real adapters (the contract suites in tests/contract run
against them too), so a service test with a fake means what it says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import secrets
import threading
import time
from typing import BinaryIO

from middleware.adapters.inprocess_notifier import InProcessNotifier
from middleware.domain.errors import IllegalTransition
from middleware.domain.job import TERMINAL_STATUSES, Job, JobStatus, can_transition
from middleware.ports import ApiKeyInfo, EndpointState, ModelInfo, User


def _now_us() -> int:
    return time.time_ns() // 1000


class MemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.writes = 0
        self.fail_create: Exception | None = None  # raised by the next create (a failed insert)

    def create(self, job: Job) -> tuple[Job, bool]:
        if self.fail_create is not None:
            error, self.fail_create = self.fail_create, None
            raise error
        with self._lock:
            if job.idempotency_key is not None:
                for existing in self._jobs.values():
                    if existing.owner == job.owner and existing.idempotency_key == job.idempotency_key:
                        return existing, False
            if job.id in self._jobs:
                raise ValueError(f"job id {job.id} already exists")
            if not job.heartbeat_at:
                job = dataclasses.replace(job, heartbeat_at=job.created_at)
            self._jobs[job.id] = job
            self.writes += 1
            return job, True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def find_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        with self._lock:
            for job in self._jobs.values():
                if job.owner == owner and job.idempotency_key == key:
                    return job
        return None

    def list_by_owner(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        with self._lock:
            jobs = sorted(
                (j for j in self._jobs.values() if j.owner == owner),
                key=lambda j: (j.created_at, j.id),
                reverse=True,
            )
        if cursor:
            try:
                created, last_id = cursor.split(":", 1)
                position = (int(created), last_id)
            except ValueError as exc:
                raise ValueError("cursor is not one this store produced") from exc
            jobs = [j for j in jobs if (j.created_at, j.id) < position]
        page = jobs[:limit]
        next_cursor = f"{page[-1].created_at}:{page[-1].id}" if len(jobs) > limit else None
        return page, next_cursor

    def update(self, previous: Job, new: Job) -> bool:
        if new.id != previous.id or new.version != previous.version + 1:
            raise ValueError(f"job {new.id}: an update must write version {previous.version + 1}")
        if new.status is not previous.status and not can_transition(previous.status, new.status):
            raise IllegalTransition(new.id, previous.status.value, new.status.value)
        with self._lock:
            job = self._jobs.get(new.id)
            if job is None or job.status is not previous.status or job.version != previous.version:
                return False
            self._jobs[new.id] = new
            self.writes += 1
            return True

    def touch(self, job_id: str, at_us: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status in TERMINAL_STATUSES:
                return False
            self._jobs[job_id] = dataclasses.replace(job, heartbeat_at=at_us)
            return True

    def find_stale_running(self, older_than_us: int, limit: int = 100) -> list[Job]:
        with self._lock:
            stale = [
                j
                for j in self._jobs.values()
                if j.status is JobStatus.RUNNING and j.heartbeat_at < older_than_us
            ]
        return sorted(stale, key=lambda j: j.id)[:limit]

    def find_cancels_unanswered(self, requested_before_us: int, limit: int = 100) -> list[Job]:
        with self._lock:
            found = [
                j
                for j in self._jobs.values()
                if j.status is JobStatus.RUNNING and 0 < j.cancel_requested_at < requested_before_us
            ]
        return sorted(found, key=lambda j: j.id)[:limit]

    def list_by_status(self, status: JobStatus, limit: int = 100, after_id: str | None = None) -> list[Job]:
        with self._lock:
            jobs = [
                j for j in self._jobs.values() if j.status == JobStatus(status) and j.id > (after_id or "")
            ]
        return sorted(jobs, key=lambda j: j.id)[:limit]


class MemoryBlobStore:
    def __init__(self, secret: bytes | None = None) -> None:
        self._blobs: dict[str, bytes] = {}
        self._secret = secret or secrets.token_bytes(32)
        self._lock = threading.Lock()

    @staticmethod
    def _check(key: str) -> None:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise ValueError(f"bad blob key {key!r}")

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._check(key)
        with self._lock:
            self._blobs[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        self._check(key)
        with self._lock:
            return self._blobs[key]

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        self._check(key)
        with self._lock:
            return key in self._blobs

    def delete(self, key: str) -> None:
        self._check(key)
        with self._lock:
            self._blobs.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._blobs)

    def _sign(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, key: str, expires_in: int) -> str:
        self._check(key)
        expires = int(time.time()) + int(expires_in)
        return f"/v1/blobs/{key}?expires={expires}&sig={self._sign(key, expires)}"

    def verify_signature(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        try:
            self._check(key)
        except ValueError:
            return False
        if not hmac.compare_digest(self._sign(key, int(expires)).encode(), (signature or "").encode()):
            return False
        return (time.time() if now is None else now) < int(expires)


class FakeCompute:
    """Records what the services ask of compute; ``fail_submit`` makes submit raise.

    ``name`` is the one endpoint it serves: a submit naming another endpoint is refused, as the
    real adapter refuses it. ``submitted_to`` holds the endpoint each submit named (None: default).
    """

    def __init__(self, endpoint_state: str = "InService", name: str = "local") -> None:
        self.name = name
        self.submitted: list[str] = []  # job ids
        self.request_keys: list[str] = []
        self.submitted_to: list[str | None] = []
        self.cancelled: list[str] = []
        self.skipped: list[tuple[str, int]] = []
        self.fail_submit: Exception | None = None
        self.fail_endpoints: Exception | None = None
        self.endpoint_state = endpoint_state
        self.running = False
        self.starts = 0
        self.stops = 0

    def submit(self, job_id: str, request_key: str, endpoint: str | None = None) -> None:
        if self.fail_submit is not None:
            raise self.fail_submit
        if endpoint is not None and endpoint != self.name:
            raise ValueError(f"endpoint {endpoint!r} is not served here (this is {self.name!r})")
        self.submitted.append(job_id)
        self.request_keys.append(request_key)
        self.submitted_to.append(endpoint)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def skip(self, job_id: str, iteration: int) -> None:
        self.skipped.append((job_id, iteration))

    def endpoints(self) -> list[EndpointState]:
        if self.fail_endpoints is not None:
            raise self.fail_endpoints
        return [EndpointState(self.name, "local", self.endpoint_state, "fake")]

    def start(self) -> None:
        self.running = True
        self.starts += 1

    def stop(self) -> None:
        self.running = False
        self.stops += 1


class MemoryCatalog:
    def __init__(self, names: tuple[str, ...] = ("tiny-sd15.safetensors",)) -> None:
        self._models = {
            name: ModelInfo(
                name=name,
                type="checkpoint",
                size=1000 + i,
                sha256=hashlib.sha256(name.encode()).hexdigest(),
                uri=f"file:///models/{name}",
            )
            for i, name in enumerate(names)
        }

    def list(self, type: str | None = None) -> list[ModelInfo]:
        return [m for m in self._models.values() if type in (None, m.type)]

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None:
        model = self._models.get(name)
        return model if model is not None and model.type == type else None


class MemoryUsers:
    """UserStore and ApiKeyStore."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._keys: dict[str, tuple[str, str]] = {}  # key id -> (sha256, user)

    def create_user(self, name: str, role: str) -> User:
        if name in self._users:
            raise ValueError(f"user {name!r} already exists")
        self._users[name] = User(name, role)
        return self._users[name]

    def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    def count_users(self) -> int:
        return len(self._users)

    def create_key(self, user: str, label: str = "") -> tuple[ApiKeyInfo, str]:
        if user not in self._users:
            raise ValueError(f"user {user!r} does not exist")
        key_id = secrets.token_hex(6)
        plaintext = f"sdc_{key_id}_{secrets.token_urlsafe(32)}"
        self._keys[key_id] = (hashlib.sha256(plaintext.encode()).hexdigest(), user)
        return ApiKeyInfo(key_id, user, label, _now_us()), plaintext

    def authenticate(self, key: str) -> User | None:
        parts = (key or "").split("_")
        entry = self._keys.get(parts[1]) if len(parts) >= 3 else None
        digest = hashlib.sha256((key or "").encode()).hexdigest()
        if entry is not None and hmac.compare_digest(entry[0], digest):
            return self._users[entry[1]]
        return None


class FakeNotifier(InProcessNotifier):
    """The in-process notifier (a plain in-memory object already), recording what was notified."""

    def __init__(self) -> None:
        super().__init__()
        self.notified: list[str] = []

    def notify(self, job_id: str) -> None:
        self.notified.append(job_id)
        super().notify(job_id)
