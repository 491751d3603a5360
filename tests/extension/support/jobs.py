"""Job views shaped like the middleware contract's, for scripted servers and fake clients."""

from __future__ import annotations

import json
from typing import Any


def job_json(
    job_id: str = "job-1",
    status: str = "queued",
    version: int = 1,
    phase: str = "queued",
    step: int = 0,
    steps: int = 20,
    images: list[dict[str, Any]] | None = None,
    infotexts: list[str] | None = None,
    error: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
    seed: int = 1234,
    **extra: Any,
) -> dict[str, Any]:
    result = None
    # A succeeded job has a result; a cancelled one does when its sampling was interrupted.
    if status == "succeeded" or (status == "cancelled" and images):
        imgs = images if images is not None else []
        result = {
            "images": imgs,
            "parameters": {"seed": seed},
            "info": json.dumps({"seed": seed, "all_seeds": [seed + i for i in range(len(imgs) or 1)]}),
            "infotexts": infotexts or [],
            "interrupted": status == "cancelled",
        }
    view: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "task": "txt2img",
        "owner": "admin",
        "endpoint": "local",
        "checkpoint": "tiny-sd15.safetensors",
        "created_at": "2024-07-27T10:00:00Z",
        "updated_at": "2024-07-27T10:00:05Z",
        "version": version,
        "progress": {
            "phase": phase,
            "step": step,
            "steps": steps,
            "fraction": (step / steps) if steps else 0.0,
        },
        "error": error,
        "result": result,
        "payload": payload or {"prompt": "a red fox", "width": 64, "height": 64, "steps": steps},
    }
    view.update(extra)
    return view
