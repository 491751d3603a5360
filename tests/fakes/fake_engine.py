"""A fake of the container's Engine port (validate + run) for server tests.

It validates nothing but the shape the server relies on and can be told to block, fail or report
progress, so the HTTP layer's queueing and error mapping are tested without torch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from inference_container.engine.types import Progress
from inference_container.errors import EngineError, InvalidRequest


@dataclass
class FakeRequest:
    job_id: str
    action: str = "ok"


@dataclass
class FakeEngine:
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    runs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.release.set()

    def validate(self, job: object) -> FakeRequest:
        if not isinstance(job, dict) or "id" not in job:
            raise InvalidRequest("job needs an id", field="id")
        return FakeRequest(job["id"], job.get("action", "ok"))

    def run(self, request: FakeRequest, on_progress) -> dict:
        self.runs.append(request.job_id)
        on_progress(Progress(request.job_id, "sampling", 3, 10))
        self.started.set()
        self.release.wait(30)
        if request.action == "oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if request.action == "engine_error":
            raise EngineError("the sampler diverged")
        if request.action == "crash":
            raise ValueError("boom")
        return {"images": [], "parameters": {}, "info": "{}", "job": request.job_id}
