"""Domain objects to the JSON shapes of ``schemas.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from middleware.domain.job import Job


def iso8601(us: int) -> str:
    return (
        datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


# Inline images can make a payload megabytes long; a job view is read on every long-poll and
# listed twenty at a time, so it carries a short placeholder for them instead.
_IMAGE_FIELDS = ("init_images", "mask", "firstpass_image", "latent_mask")
MAX_INLINE_IMAGE_CHARS = 4096


def _elide(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_INLINE_IMAGE_CHARS:
        return f"<image omitted from the job view: {len(value)} characters>"
    if isinstance(value, list):
        return [_elide(v) for v in value]
    return value


def payload_view(payload: dict[str, Any]) -> dict[str, Any]:
    if not any(name in payload for name in _IMAGE_FIELDS):
        return payload
    return {k: (_elide(v) if k in _IMAGE_FIELDS else v) for k, v in payload.items()}


def job_view(job: Job, url_for: Callable[[str], str]) -> dict[str, Any]:
    result = None
    if job.result is not None:
        result = {
            "images": [
                {"index": img["index"], "key": img["key"], "url": url_for(img["key"])}
                for img in job.result.get("images", [])
            ],
            "parameters": job.result.get("parameters") or {},
            "info": job.result.get("info") or "",
            "infotexts": job.result.get("infotexts") or [],
        }
    return {
        "id": job.id,
        "status": job.status.value,
        "task": job.task,
        "owner": job.owner,
        "endpoint": job.endpoint,
        "checkpoint": job.checkpoint,
        "created_at": iso8601(job.created_at),
        "updated_at": iso8601(job.updated_at),
        "version": job.version,
        "progress": job.progress.to_dict(),
        "error": job.error.to_dict() if job.error else None,
        "result": result,
        "payload": payload_view(job.payload),
    }
