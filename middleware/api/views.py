"""Domain objects to the JSON shapes of ``schemas.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from middleware.domain.job import Job, preview_key


def iso8601(us: int) -> str:
    return (
        datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _progress_view(job: Job, url_for: Callable[[str], str]) -> dict[str, Any]:
    progress = job.progress.to_dict()
    progress["preview_url"] = url_for(preview_key(job.id)) if job.progress.preview_step > 0 else None
    return progress


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
            "interrupted": bool(job.result.get("interrupted")),
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
        "progress": _progress_view(job, url_for),
        "error": job.error.to_dict() if job.error else None,
        "result": result,
        # The record's bounded summary of the request; the whole request is jobs/<id>/request.json.
        "payload": job.summary,
    }
