"""A fake of OUR SDCloudClient interface (the methods the UI calls), with canned job timelines.

Not a mock: it behaves like the client would against a tiny in-memory middleware, and records
what the UI asked for so tests can check the payload and the calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdcloud.errors import Conflict, NotFound, SDCloudError
from sdcloud.records import Endpoint, Job, ModelInfo, Page, ResultImage, ServerInfo, User
from tests.extension.support.images import png_with_infotext
from tests.extension.support.jobs import job_json


def infotext_for(prompt: str, seed: int, index: int = 0) -> str:
    return (
        f"{prompt}\nNegative prompt: blurry\n"
        f"Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: {seed + index}, Size: 64x64"
    )


def success_timeline(job_id: str, prompt: str = "a red fox", images: int = 1, seed: int = 1234) -> list[Job]:
    """queued -> loading model -> sampling 5/20, 20/20 -> succeeded with `images` images."""
    texts = [infotext_for(prompt, seed, i) for i in range(images)]
    result_images = [
        {
            "index": i,
            "key": f"jobs/{job_id}/images/{i}.png",
            "url": f"http://fake/v1/blobs/jobs/{job_id}/images/{i}.png",
        }
        for i in range(images)
    ]
    views = [
        job_json(job_id, "queued", 1),
        job_json(job_id, "running", 2, phase="loading_model"),
        job_json(job_id, "running", 3, phase="sampling", step=5, steps=20),
        job_json(job_id, "running", 4, phase="sampling", step=20, steps=20),
        job_json(
            job_id, "succeeded", 5, phase="done", step=20, images=result_images, infotexts=texts, seed=seed
        ),
    ]
    return [Job.from_json(v) for v in views]


class FakeClient:
    base_url = "http://fake"

    def __init__(
        self,
        timelines: list[list[Job]] | None = None,
        models: list[str] | None = None,
        endpoints: list[tuple[str, str]] | None = None,
        submit_error: Exception | None = None,
    ) -> None:
        self._timelines = list(timelines or [success_timeline("job-1")])
        self.models = models if models is not None else ["tiny-sd15.safetensors", "other.safetensors"]
        self.endpoints = (
            endpoints if endpoints is not None else [("local", "InService"), ("cloud", "OutOfService")]
        )
        self.submit_error = submit_error
        self.submits: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.downloads: list[str] = []
        self.jobs: dict[str, list[Job]] = {}

    # --- the interface the UI uses ---

    def ping(self) -> ServerInfo:
        return ServerInfo("ok", "0.1.0", "local")

    def me(self) -> User:
        return User("admin", "admin")

    def close(self) -> None:
        pass

    def list_models(self, type: str = "checkpoint") -> list[ModelInfo]:
        return [ModelInfo(name, type, 10, "ab" * 32) for name in self.models]

    def list_endpoints(self) -> list[Endpoint]:
        return [Endpoint(name, "local", status, "") for name, status in self.endpoints]

    def submit_inference(
        self,
        task: str,
        payload: dict[str, Any],
        checkpoint: str,
        endpoint: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        if self.submit_error is not None:
            raise self.submit_error
        self.submits.append(
            {"task": task, "payload": payload, "checkpoint": checkpoint, "endpoint": endpoint}
        )
        if not self._timelines:
            raise SDCloudError("FakeClient has no more scripted jobs")
        timeline = self._timelines.pop(0)
        self.jobs[timeline[0].id] = timeline
        return timeline[0]

    def get_inference(self, job_id: str, wait: float = 0, version: int | None = None) -> Job:
        if job_id not in self.jobs:
            raise NotFound(404, "Not Found", f"no job {job_id}")
        return self.jobs[job_id][-1]

    def watch_inference(
        self, job_id: str, timeout: float = 600, poll_wait: float = 20, first: Job | None = None
    ) -> Iterator[Job]:
        yield from self.jobs[job_id]

    def cancel_inference(self, job_id: str) -> Job:
        last = self.jobs[job_id][-1]
        if last.is_terminal:
            raise Conflict(409, "Conflict", f"job {job_id} is already {last.status}")
        self.cancelled.append(job_id)
        return last

    def list_inferences(self, limit: int = 20, cursor: str | None = None) -> Page[Job]:
        jobs = [timeline[-1] for timeline in reversed(list(self.jobs.values()))]
        start = int(cursor or 0)
        chunk = jobs[start : start + limit]
        next_cursor = str(start + limit) if start + limit < len(jobs) else None
        return Page(chunk, next_cursor)

    def download_image(
        self, image: ResultImage | str, dest_dir: str | os.PathLike[str], filename: str | None = None
    ) -> Path:
        assert isinstance(image, ResultImage)
        self.downloads.append(image.url)
        job = self.jobs[image.job_id][-1]
        text = job.result.infotext(image.index) if job.result else ""
        target = Path(dest_dir) / (filename or image.filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png_with_infotext(text))
        return target


class RecordingProgress:
    """Stands in for gr.Progress: records (fraction, desc) calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str | None = None, **_: Any) -> None:
        self.calls.append((fraction, desc or ""))
