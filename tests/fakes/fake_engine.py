"""A fake of the container's Engine port (validate, run, interrupted_result) for server tests.

It validates nothing but the shape the server relies on and can be told to block, fail or report
progress, so the HTTP layer's queueing and error mapping are tested without torch. A job with
``"steps": n`` samples ``n`` fake steps per batch iteration (``"n_iter"``), calling
``control.poll(iteration)`` before each one like the real generator; with ``gated`` set, each
step waits for a permit from ``allow()``, so a test decides exactly where the job is.
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
    steps: int = 0
    n_iter: int = 1
    output_prefix: str | None = None


@dataclass
class FakeEngine:
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    runs: list[str] = field(default_factory=list)
    gated: bool = False
    polls: list[tuple[str, int, str]] = field(default_factory=list)
    _permits: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _polled: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.release.set()

    # -- test controls ----------------------------------------------------------------------------

    def allow(self, steps: int = 1) -> None:
        """Let ``steps`` more gated steps run."""
        for _ in range(steps):
            self._permits.release()

    def wait_for_polls(self, count: int, timeout: float = 10) -> None:
        with self._polled:
            if not self._polled.wait_for(lambda: len(self.polls) >= count, timeout):
                raise AssertionError(f"the fake engine polled {len(self.polls)} times, expected {count}")

    # -- the Engine port ----------------------------------------------------------------------------

    def validate(self, job: object) -> FakeRequest:
        if not isinstance(job, dict) or "id" not in job:
            raise InvalidRequest("job needs an id", field="id")
        output = job.get("output") or {}
        return FakeRequest(job["id"], job.get("action", "ok"), int(job.get("steps", 0)),
                           int(job.get("n_iter", 1)), output.get("prefix"))

    def run(self, request: FakeRequest, on_progress, control=None) -> dict:
        self.runs.append(request.job_id)
        if request.steps:
            return self._sample(request, on_progress, control)
        on_progress(Progress(request.job_id, "sampling", 3, 10))
        self.started.set()
        self.release.wait(30)
        if request.action == "oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if request.action == "engine_error":
            raise EngineError("the sampler diverged")
        if request.action == "crash":
            raise ValueError("boom")
        if request.action == "surrogate_error":
            raise InvalidRequest("prompt 'a \ud800 b' cannot be encoded", field="payload.prompt")
        return {"images": [], "parameters": {}, "info": "{}", "job": request.job_id,
                "interrupted": False, "skipped_iterations": []}

    def interrupted_result(self, request: FakeRequest) -> dict:
        return {"images": [], "parameters": {}, "info": "{}", "job": request.job_id,
                "interrupted": True, "skipped_iterations": []}

    def _sample(self, request: FakeRequest, on_progress, control) -> dict:
        total = request.steps * request.n_iter
        images: list[str] = []
        skipped: list[int] = []
        interrupted = False
        self.started.set()
        for iteration in range(request.n_iter):
            done = 0
            action = "continue"
            for step in range(request.steps):
                if self.gated and not self._permits.acquire(timeout=30):
                    raise AssertionError("the test never allowed the next step")
                action = control.poll(iteration) if control is not None else "continue"
                with self._polled:
                    self.polls.append((request.job_id, iteration, action))
                    self._polled.notify_all()
                if action != "continue":
                    break
                done += 1
                on_progress(Progress(request.job_id, "sampling", iteration * request.steps + step + 1, total))
            images.append(f"{request.job_id}/iteration-{iteration}/steps-{done}")  # decoded as far as sampled
            if action == "skip":
                skipped.append(iteration)
            if action == "interrupt":
                interrupted = True
                break
        return {"images": images, "parameters": {}, "info": "{}", "job": request.job_id,
                "interrupted": interrupted, "skipped_iterations": skipped}
