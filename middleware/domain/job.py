"""The generation job: one small record, one state machine (DESIGN §4).

The record is a bounded summary (it must fit a DynamoDB item with room to spare: ``MAX_RECORD_BYTES``);
the full request, init images included, lives in the blob store at ``request_key(id)`` and the
full result at ``result_key(id)``. Every state change is a pure function here that returns the new
``Job`` (version + 1) or raises ``IllegalTransition``; stores persist it only if the stored job
still has the previous status and version, so a late or duplicated notification can never move a
finished job.
"""

from __future__ import annotations

import dataclasses
import json
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

# --- blob keys of one job (DESIGN §4) ---------------------------------------------------------


def output_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def invocation_key(job_id: str) -> str:
    """Where the SageMaker compute keeps what InvokeEndpointAsync answered (endpoint,
    inference_id, output_location, failure_location, invoked_at) for the SNS completion handler."""
    return f"{output_prefix(job_id)}invocation.json"


def request_key(job_id: str) -> str:
    return f"{output_prefix(job_id)}request.json"


def result_key(job_id: str) -> str:
    return f"{output_prefix(job_id)}result.json"


def image_key(job_id: str, n: int) -> str:
    return f"{output_prefix(job_id)}images/{n}.png"


def preview_key(job_id: str) -> str:
    """The job's latest live preview (a small JPEG, replaced as sampling goes on)."""
    return f"{output_prefix(job_id)}preview.jpg"


def cancel_marker_key(job_id: str) -> str:
    return f"{output_prefix(job_id)}cancel"


def skip_marker_key(job_id: str) -> str:
    return f"{output_prefix(job_id)}skip"


def request_document(
    job_id: str, task: str, payload: dict[str, Any], models: dict[str, Any]
) -> dict[str, Any]:
    """The job document of DESIGN §4, as the container receives it."""
    return {
        "id": job_id,
        "task": task,
        "payload": payload,
        "models": models,
        "output": {"prefix": output_prefix(job_id)},
    }


# --- bounds -------------------------------------------------------------------------------------

# DynamoDB caps an item at 400 KB; a record this small also keeps every long-poll answer cheap.
MAX_RECORD_BYTES = 16 * 1024
PROMPT_EXCERPT_CHARS = 1000
MESSAGE_CHARS = 2000
SHORT_HASH_CHARS = 10
# The result's info/infotexts/parameters stay in the record only while they fit in this many
# bytes of JSON; beyond it they are read from result.json when one job is asked for.
RESULT_DETAIL_BYTES = 6 * 1024
_PHASE_CHARS = 64
_VALUE_CHARS = 200

# Payload fields the record keeps (what history lists and job views show at a glance).
SUMMARY_FIELDS: tuple[str, ...] = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "steps",
    "sampler_name",
    "sampler_index",
    "scheduler",
    "cfg_scale",
    "seed",
    "subseed",
    "subseed_strength",
    "batch_size",
    "n_iter",
    "denoising_strength",
    "enable_hr",
    "hr_scale",
    "hr_upscaler",
    "hr_second_pass_steps",
    "resize_mode",
)
_TEXT_FIELDS = {"prompt": PROMPT_EXCERPT_CHARS, "negative_prompt": PROMPT_EXCERPT_CHARS}
_IMAGE_FIELDS = ("init_images", "mask")


def excerpt(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def summarize_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The bounded part of an A1111 payload the record keeps: a few scalar fields, the prompts
    as excerpts, and how many input images the request has (the images stay in request.json)."""
    summary: dict[str, Any] = {}
    for name in SUMMARY_FIELDS:
        if name not in payload:
            continue
        value = payload[name]
        if isinstance(value, str):
            summary[name] = excerpt(value, _TEXT_FIELDS.get(name, _VALUE_CHARS))
        elif value is None or isinstance(value, bool | int | float):
            summary[name] = value
    images = 0
    for name in _IMAGE_FIELDS:
        value = payload.get(name)
        if isinstance(value, list):
            images += len(value)
        elif value:
            images += 1
    if images:
        summary["input_images"] = images
    return summary


def result_detail(document: dict[str, Any]) -> dict[str, Any]:
    """info (A1111's JSON string), infotexts (one per image) and parameters (without input
    images) from a result document (container response shape)."""
    info = document.get("info") or ""
    if not isinstance(info, str):
        info = json.dumps(info)
    infotexts: list[str] = []
    try:
        parsed = json.loads(info) if info else {}
        if isinstance(parsed, dict) and isinstance(parsed.get("infotexts"), list):
            infotexts = [str(t) for t in parsed["infotexts"]]
    except ValueError:
        pass
    parameters = document.get("parameters") if isinstance(document.get("parameters"), dict) else {}
    return {
        "info": info,
        "infotexts": infotexts,
        "parameters": {k: v for k, v in parameters.items() if k not in _IMAGE_FIELDS},
    }


def summarize_result(job_id: str, document: dict[str, Any]) -> dict[str, Any]:
    """The bounded result summary from a result document (container response shape):
    image keys (compact when they follow ``images/<n>.png``), count, whether sampling was
    interrupted, and ``result_detail`` only while it fits ``RESULT_DETAIL_BYTES`` (else
    ``detail_key`` says where to read it)."""
    output = document.get("output") if isinstance(document.get("output"), dict) else {}
    keys = [str(img["key"]) for img in output.get("images", []) if isinstance(img, dict) and "key" in img]
    summary: dict[str, Any] = {"count": len(keys), "interrupted": bool(document.get("interrupted"))}
    if keys != [image_key(job_id, n) for n in range(len(keys))]:
        summary["keys"] = keys  # not our layout: keep them (bounded by the batch limits)
    detail = result_detail(document)
    if len(json.dumps(detail)) <= RESULT_DETAIL_BYTES:
        summary.update(detail)
    else:
        summary["detail_key"] = result_key(job_id)
    return summary


def with_result_detail(job: Job, document: dict[str, Any]) -> Job:
    """``job`` with the result details its record had no room for (the record is not changed)."""
    if job.result_summary is None:
        return job
    full = {k: v for k, v in job.result_summary.items() if k != "detail_key"}
    full.update(result_detail(document))
    return dataclasses.replace(job, result_summary=full)


# --- values -------------------------------------------------------------------------------------


def can_transition(from_status: JobStatus | str, to_status: JobStatus | str) -> bool:
    """True when the state machine allows ``from_status -> to_status``."""
    return JobStatus(to_status) in ALLOWED_TRANSITIONS[JobStatus(from_status)]


@dataclass(frozen=True)
class Progress:
    """Where a job is: phase (queued / starting / loading_model / sampling / cancelling / ...),
    step i of N, and the batch iteration (0-based) of n_iter (what a skip ends)."""

    phase: str = "queued"
    step: int = 0
    steps: int = 0
    fraction: float = 0.0
    iteration: int = 0
    n_iter: int = 0
    preview_step: int = 0  # the step the live preview at preview_key() shows; 0 = none yet

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "step": self.step,
            "steps": self.steps,
            "fraction": self.fraction,
            "iteration": self.iteration,
            "n_iter": self.n_iter,
            "preview_step": self.preview_step,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        if not data:
            return cls()
        try:
            fraction = float(data.get("fraction") or 0.0)
        except (TypeError, ValueError):
            fraction = 0.0
        return cls(
            phase=excerpt(str(data.get("phase") or "queued"), _PHASE_CHARS),
            step=_int(data.get("step")),
            steps=_int(data.get("steps")),
            fraction=min(max(fraction, 0.0), 1.0),
            iteration=_int(data.get("iteration")),
            n_iter=_int(data.get("n_iter")),
            preview_step=_int(data.get("preview_step")),
        )

    def with_phase(self, phase: str) -> Progress:
        return dataclasses.replace(self, phase=phase)


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class JobError:
    """Why a job failed (or how a cancel ended), in words a person can act on."""

    code: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", excerpt(str(self.code), _PHASE_CHARS))
        object.__setattr__(self, "message", excerpt(str(self.message), MESSAGE_CHARS))

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobError | None:
        if not data:
            return None
        return cls(code=str(data.get("code") or "error"), message=str(data.get("message") or ""))


@dataclass(frozen=True)
class Job:
    """One generation job's record. Times are integer microseconds since the Unix epoch.

    ``summary`` is ``summarize_payload`` of the request; ``result_summary`` is
    ``summarize_result`` of the result document. ``cancel_requested_at`` is 0 until a cancel of
    the running job is asked for.
    """

    id: str
    owner: str
    task: str
    summary: dict[str, Any]
    checkpoint: str
    checkpoint_hash: str
    endpoint: str
    created_at: int
    updated_at: int
    status: JobStatus = JobStatus.QUEUED
    version: int = 1
    progress: Progress = field(default_factory=Progress)
    error: JobError | None = None
    result_summary: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    heartbeat_at: int = 0
    cancel_requested_at: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at > 0

    @property
    def result(self) -> dict[str, Any] | None:
        """The result in the shape job views show: images with index and key, info, infotexts,
        parameters (empty when they only live in result.json: see ``needs_result_detail``)."""
        summary = self.result_summary
        if summary is None:
            return None
        keys = summary.get("keys")
        if not isinstance(keys, list):
            keys = [image_key(self.id, n) for n in range(int(summary.get("count") or 0))]
        return {
            "images": [{"index": i, "key": key} for i, key in enumerate(keys)],
            "parameters": summary.get("parameters") or {},
            "info": summary.get("info") or "",
            "infotexts": summary.get("infotexts") or [],
            "interrupted": bool(summary.get("interrupted")),
        }

    @property
    def needs_result_detail(self) -> bool:
        return bool(self.result_summary and self.result_summary.get("detail_key"))


def new_job(
    *,
    id: str,
    owner: str,
    task: str,
    payload: dict[str, Any],
    checkpoint: str,
    checkpoint_sha256: str,
    endpoint: str,
    now_us: int,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Job:
    """A queued job's record for a request (the request itself goes to request.json)."""
    return Job(
        id=id,
        owner=owner,
        task=task,
        summary=summarize_payload(payload),
        checkpoint=checkpoint,
        checkpoint_hash=checkpoint_sha256[:SHORT_HASH_CHARS],
        endpoint=endpoint,
        created_at=now_us,
        updated_at=now_us,
        heartbeat_at=now_us,
        progress=Progress("queued"),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


# --- state changes: each returns the new Job (version + 1) or raises IllegalTransition ----------


def _move(job: Job, to_status: JobStatus, now_us: int, **changes: Any) -> Job:
    if not can_transition(job.status, to_status):
        raise IllegalTransition(job.id, job.status.value, to_status.value)
    return dataclasses.replace(job, status=to_status, version=job.version + 1, updated_at=now_us, **changes)


def _require_active(job: Job, to: str) -> None:
    if job.is_terminal:
        raise IllegalTransition(job.id, job.status.value, to)


def started(job: Job, now_us: int) -> Job:
    """A worker took the job (queued -> running)."""
    return _move(job, JobStatus.RUNNING, now_us, progress=Progress("starting"), heartbeat_at=now_us)


def progressed(job: Job, progress: Progress, now_us: int) -> Job:
    """New progress for an unfinished job; a job being cancelled keeps the phase "cancelling"."""
    _require_active(job, job.status.value)
    if job.cancel_requested:
        progress = progress.with_phase("cancelling")
    return dataclasses.replace(
        job, progress=progress, version=job.version + 1, updated_at=now_us, heartbeat_at=now_us
    )


def succeeded(job: Job, result: dict[str, Any], now_us: int) -> Job:
    """The result arrived (running -> succeeded)."""
    steps = job.progress.steps
    return _move(
        job,
        JobStatus.SUCCEEDED,
        now_us,
        result_summary=result,
        progress=Progress("done", steps, steps, 1.0, job.progress.iteration, job.progress.n_iter),
    )


def failed(job: Job, error: JobError, now_us: int) -> Job:
    p = job.progress
    return _move(
        job, JobStatus.FAILED, now_us, error=error, progress=dataclasses.replace(p, phase="failed")
    )


def cancel_requested(job: Job, now_us: int) -> Job:
    """A cancel of a running job was asked for: it stays running, shown as "cancelling", until
    the container's (partial) result arrives or the sweeper gives up waiting."""
    if job.status is not JobStatus.RUNNING:
        raise IllegalTransition(job.id, job.status.value, "cancelling")
    if job.cancel_requested:
        return job
    return dataclasses.replace(
        job,
        version=job.version + 1,
        updated_at=now_us,
        cancel_requested_at=now_us,
        progress=job.progress.with_phase("cancelling"),
    )


def cancelled(
    job: Job, now_us: int, *, result: dict[str, Any] | None = None, error: JobError | None = None
) -> Job:
    """The job ended cancelled: at once when queued, or with the images sampled so far (when
    the container answered the interrupt) or a reason (when it never did)."""
    return _move(
        job,
        JobStatus.CANCELLED,
        now_us,
        result_summary=result if result is not None else job.result_summary,
        error=error,
        progress=job.progress.with_phase("cancelled"),
    )
