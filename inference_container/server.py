"""SageMaker's container contract over HTTP: GET /ping, POST /invocations (+ GET /progress).

The event loop only parses, validates and waits; generation runs on the single GPU worker
thread, so /ping stays fast (SageMaker allows it 2 s) even while a job samples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.types import Progress
from inference_container.errors import EngineError, InvalidRequest, NotReady, OutOfMemory, PayloadTooLarge
from inference_container.progress import ProgressBoard
from inference_container.worker import SingleWorker

log = logging.getLogger("inference_container")


class EngineState:
    """Readiness: the engine becomes ready once its start-up work (e.g. model preload) is done."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.failure: str | None = None


def create_app(engine: Any, *, max_waiting: int, max_body_bytes: int,
               state: EngineState | None = None) -> FastAPI:
    state = state or EngineState()
    board = ProgressBoard()
    worker = SingleWorker(max_waiting)
    app = FastAPI(title="SD Cloud inference container", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.engine_state = state
    app.state.worker = worker
    app.state.progress = board

    @app.get("/ping")
    async def ping() -> JSONResponse:
        if state.failure:
            return JSONResponse({"status": "failed", "detail": state.failure}, status_code=503)
        if not state.ready.is_set():
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/progress")
    async def progress(job_id: str | None = None) -> JSONResponse:
        """The running job's progress, or with ?job_id= that job's (queued, running or just finished)."""
        current = board.of_job(job_id) if job_id else board.current()
        if current is None:
            return JSONResponse({"status": 404, "code": "unknown_job",
                                 "detail": f"no job {job_id!r} is queued, running or recently finished"},
                                status_code=404)
        body = current.to_dict()
        body["queue_depth"] = worker.waiting
        return JSONResponse(body)

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        try:
            if not state.ready.is_set():
                raise NotReady("the engine is still starting; retry when /ping answers 200")
            job = await _read_json(request, max_body_bytes)
            validated = await run_in_threadpool(engine.validate, job)
            board.report(Progress(validated.job_id, "queued"))
            future = worker.submit(_job_runner(engine, validated, board))
            body = await asyncio.wrap_future(future)
            return JSONResponse(body)
        except EngineError as exc:
            return _error_response(exc)
        except Exception as exc:  # never a bare 500 with a stack trace: log it, answer with its gist
            log.exception("unexpected engine failure")
            return JSONResponse(
                {"status": 500, "code": "internal_error",
                 "detail": f"internal error in the engine ({type(exc).__name__}: {exc})"},
                status_code=500,
            )

    @app.on_event("shutdown")
    def _stop_worker() -> None:
        worker.stop()

    return app


def _job_runner(engine: Any, validated: Any, board: ProgressBoard) -> Callable[[], dict]:
    def run() -> dict:
        try:
            result = engine.run(validated, board.report)
            last = board.of_job(validated.job_id)
            steps = last.steps if last else 0
            board.report(Progress(validated.job_id, "done", steps, steps))
            board.report(Progress(None, "idle"))
            return result
        except BaseException as exc:
            board.report(Progress(validated.job_id, "failed"))
            if not isinstance(exc, OutOfMemory) and is_out_of_memory(exc):  # e.g. while loading a model
                release_device_memory()
                raise OutOfMemory(
                    "the GPU ran out of memory for this job; lower width/height, batch_size or the "
                    "hires-fix scale and retry"
                ) from exc
            raise

    return run


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc


def _error_response(exc: EngineError) -> JSONResponse:
    headers = {"Retry-After": "2"} if exc.status in (429, 503) else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


if __name__ == "__main__":
    from inference_container.bootstrap import main

    main()
