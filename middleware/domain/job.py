"""The generation job: one record, one state machine (DESIGN §4).

Statuses move only along ``ALLOWED_TRANSITIONS``; every store enforces the same table at write
time (together with an optimistic ``version``), so a late or duplicated notification can never
move a finished job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from middleware.domain.errors import IllegalTransition


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

TASKS: tuple[str, ...] = ("txt2img", "img2img")


def can_transition(from_status: JobStatus | str, to_status: JobStatus | str) -> bool:
    """True when the state machine allows ``from_status -> to_status``."""
    return JobStatus(to_status) in ALLOWED_TRANSITIONS[JobStatus(from_status)]


def statuses_that_can_become(to_status: JobStatus | str) -> tuple[JobStatus, ...]:
    """The statuses from which ``to_status`` is reachable in one step (in declaration order)."""
    target = JobStatus(to_status)
    return tuple(s for s in JobStatus if target in ALLOWED_TRANSITIONS[s])


@dataclass(frozen=True)
class Progress:
    """Where a job is: phase (queued / starting / loading_model / sampling / ...) and step i of N."""

    phase: str = "queued"
    step: int = 0
    steps: int = 0
    fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "step": self.step, "steps": self.steps, "fraction": self.fraction}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        if not data:
            return cls()
        fraction = float(data.get("fraction") or 0.0)
        return cls(
            phase=str(data.get("phase") or "queued"),
            step=int(data.get("step") or 0),
            steps=int(data.get("steps") or 0),
            fraction=min(max(fraction, 0.0), 1.0),
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed, in words a person can act on."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobError | None:
        if not data:
            return None
        return cls(code=str(data.get("code") or "error"), message=str(data.get("message") or ""))


@dataclass(frozen=True)
class Job:
    """One generation job. Times are integer microseconds since the Unix epoch (exact ordering)."""

    id: str
    owner: str
    task: str
    payload: dict[str, Any]
    checkpoint: str
    models: dict[str, Any]
    endpoint: str
    created_at: int
    updated_at: int
    status: JobStatus = JobStatus.QUEUED
    version: int = 1
    progress: Progress = field(default_factory=Progress)
    error: JobError | None = None
    result: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    heartbeat_at: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def document(self) -> dict[str, Any]:
        """The job document of DESIGN §4 (without ``output``: the compute adapter adds it if needed)."""
        return {"id": self.id, "task": self.task, "payload": self.payload, "models": self.models}


# Fields a status change may set alongside the status itself.
TRANSITION_FIELDS: frozenset[str] = frozenset({"progress", "error", "result", "heartbeat_at"})


def transition(job: Job, to_status: JobStatus | str, now_us: int, **changes: Any) -> Job:
    """Return ``job`` moved to ``to_status`` (version + 1), or raise ``IllegalTransition``."""
    target = JobStatus(to_status)
    if not can_transition(job.status, target):
        raise IllegalTransition(job.id, job.status.value, target.value)
    unknown = set(changes) - TRANSITION_FIELDS
    if unknown:
        raise ValueError(f"a transition cannot change {sorted(unknown)}")
    return dataclasses.replace(job, status=target, version=job.version + 1, updated_at=now_us, **changes)


def with_progress(job: Job, progress: Progress, now_us: int) -> Job:
    """Return ``job`` with new progress (version + 1); progress never changes a finished job."""
    if job.is_terminal:
        raise IllegalTransition(job.id, job.status.value, job.status.value)
    return dataclasses.replace(
        job, progress=progress, version=job.version + 1, updated_at=now_us, heartbeat_at=now_us
    )
