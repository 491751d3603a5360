"""SageMaker's container contract over HTTP: GET /ping, POST /invocations, plus GET /progress and
the control API (POST /jobs/{id}/interrupt, POST /jobs/{id}/skip).

The event loop only parses, validates and waits; generation runs on the single GPU worker
thread, so /ping stays fast (SageMaker allows it 2 s) even while a job samples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inference_container.body_checks import lone_surrogate_path
from inference_container.contract.generation_contract import LIMITS, json_depth
from inference_container.control import JobControl, JobControls, JobMarkers
from inference_container.engine.memory import is_out_of_memory, release_device_memory
from inference_container.engine.types import Progress
from inference_container.errors import (
    Conflict,
    EngineError,
    InvalidRequest,
    NotReady,
    OutOfMemory,
    PayloadTooLarge,
)
from inference_container.outputs import OutputStore
from inference_container.progress import ProgressBoard, ProgressPublisher, progress_document
from inference_container.worker import SingleWorker

log = logging.getLogger("inference_container")

_CONTROL_BODY_BYTES = 4096


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: text that cannot be UTF-8 (lone surrogates) is escaped instead."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class EngineState:
    """Readiness: the engine becomes ready once its start-up work (e.g. model preload) is done."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.failure: str | None = None


def create_app(engine: Any, *, max_waiting: int, max_body_bytes: int, state: EngineState | None = None,
               output_store: OutputStore | None = None, marker_poll_s: float = 0.5,
               progress_publish_s: float = 1.0) -> FastAPI:
    """``engine`` is the Engine port: ``validate(job)``, ``run(request, on_progress, control)`` and
    ``interrupted_result(request)``; ``output_store`` is where cancel/skip markers are read and,
    for jobs with ``output.prefix``, progress is written (at most every ``progress_publish_s``)."""
    state = state or EngineState()
    publisher = ProgressPublisher(output_store, interval_s=progress_publish_s) if output_store is not None else None
    board = ProgressBoard(listener=publisher.offer if publisher is not None else None)
    controls = JobControls()
    waiting_requests: dict[str, Any] = {}  # validated requests of queued jobs, for an interrupt to answer
    worker = SingleWorker(max_waiting)
    app = FastAPI(title="SD Cloud inference container", version="0.1.0", docs_url=None, redoc_url=None,
                  default_response_class=SafeJSONResponse)
    app.state.engine_state = state
    app.state.worker = worker
    app.state.progress = board

    def control_for(request: Any) -> JobControl:
        prefix = getattr(request, "output_prefix", None)
        markers = None
        if prefix and output_store is not None:
            markers = JobMarkers(output_store, prefix, interval_s=marker_poll_s)
        return JobControl(request.job_id, int(getattr(request, "n_iter", 1)), markers)

    @app.get("/ping")
    async def ping() -> JSONResponse:
        if state.failure:
            return SafeJSONResponse({"status": "failed", "detail": state.failure}, status_code=503)
        if not state.ready.is_set():
            return SafeJSONResponse({"status": "starting"}, status_code=503)
        return SafeJSONResponse({"status": "ok"})

    @app.get("/progress")
    async def progress(job_id: str | None = None) -> JSONResponse:
        """The running job's progress, or with ?job_id= that job's (queued, running or just finished).

        ``iteration`` is the batch iteration (0-based, of ``n_iter``) sampling now: the one a skip ends.
        """
        current = board.of_job(job_id) if job_id else board.current()
        if current is None:
            return SafeJSONResponse({"status": 404, "code": "unknown_job",
                                     "detail": f"no job {job_id!r} is queued, running or recently finished"},
                                    status_code=404)
        control = controls.get(current.job_id) if current.job_id else None
        return SafeJSONResponse(progress_document(current, control, worker.waiting))

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        try:
            if not state.ready.is_set():
                raise NotReady("the engine is still starting; retry when /ping answers 200")
            job = await _read_json(request, max_body_bytes)
            validated = await run_in_threadpool(engine.validate, job)
            control = control_for(validated)
            if not controls.add(control):
                raise Conflict(f"job {validated.job_id!r} is already queued or running here", field="id")
            try:
                if publisher is not None and validated.output_prefix:
                    publisher.track(validated.job_id, validated.output_prefix,
                                    lambda p, c=control: progress_document(p, c, worker.waiting))
                board.report(Progress(validated.job_id, "queued"))
                waiting_requests[validated.job_id] = validated
                runner = _job_runner(engine, validated, board, control, waiting_requests)
                future = worker.submit(validated.job_id, runner)
            except BaseException:
                waiting_requests.pop(validated.job_id, None)
                controls.remove(control)
                if publisher is not None:
                    publisher.forget(validated.job_id)
                raise
            body = await asyncio.wrap_future(future)
            return SafeJSONResponse(body)
        except EngineError as exc:
            return _error_response(exc)
        except Exception as exc:  # never a bare 500 with a stack trace: log it, answer with its gist
            log.exception("unexpected engine failure")
            return SafeJSONResponse(
                {"status": 500, "code": "internal_error",
                 "detail": f"internal error in the engine ({type(exc).__name__}: {exc})"},
                status_code=500,
            )

    async def control_job(job_id: str, action: Literal["interrupt", "skip"], request: Request) -> JSONResponse:
        """202 with ``state``: where the job was when the request came (queued, running, finished, unknown)."""
        try:
            iteration = await _skip_iteration(request) if action == "skip" else None
        except EngineError as exc:
            return _error_response(exc)
        control = controls.get(job_id)
        if control is None:
            return SafeJSONResponse({"job_id": job_id, "action": action, "state": "unknown"}, status_code=202)
        if action == "skip":
            job_state = control.request_skip(iteration)
        else:
            job_state = control.request_interrupt()
            waiting = waiting_requests.get(job_id)
            if job_state == "queued":
                withdrawn = waiting is not None and await run_in_threadpool(
                    worker.withdraw, job_id, _withdrawn_result(engine, waiting, control, board, waiting_requests))
                # Not withdrawn: the GPU took it meanwhile, and sees the interrupt before its first step.
                job_state = "queued" if withdrawn else "running"
        return SafeJSONResponse({"job_id": job_id, "action": action, "state": job_state}, status_code=202)

    @app.post("/jobs/{job_id}/interrupt", status_code=202)
    async def interrupt(job_id: str, request: Request) -> JSONResponse:
        """Stop the job: a queued one leaves the queue, a running one stops at its next step."""
        return await control_job(job_id, "interrupt", request)

    @app.post("/jobs/{job_id}/skip", status_code=202)
    async def skip(job_id: str, request: Request) -> JSONResponse:
        """End one batch iteration (body ``{"iteration": n}``; default: the one sampling now)."""
        return await control_job(job_id, "skip", request)

    @app.on_event("shutdown")
    def _stop_worker() -> None:
        worker.stop()
        if publisher is not None:
            publisher.stop()

    return app


def _job_runner(engine: Any, validated: Any, board: ProgressBoard, control: JobControl,
                waiting_requests: dict[str, Any]) -> Callable[[], dict]:
    def run() -> dict:
        waiting_requests.pop(validated.job_id, None)
        control.mark("running")
        try:
            if control.should_start():
                result = engine.run(validated, board.report, control)
            else:  # cancelled while it waited (e.g. a cancel marker written before it reached us)
                result = engine.interrupted_result(validated)
            last = board.of_job(validated.job_id)
            steps = last.steps if last else 0
            if result.get("interrupted"):
                board.report(Progress(validated.job_id, "interrupted", last.step if last else 0, steps))
            else:
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
        finally:
            control.mark("finished")

    return run


def _withdrawn_result(engine: Any, validated: Any, control: JobControl, board: ProgressBoard,
                      waiting_requests: dict[str, Any]) -> Callable[[], dict]:
    def result() -> dict:
        waiting_requests.pop(validated.job_id, None)
        try:
            return engine.interrupted_result(validated)
        finally:
            control.mark("finished")
            board.report(Progress(control.job_id, "interrupted"))

    return result


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


async def _read_json(request: Request, limit: int) -> Any:
    body = await _read_body(request, limit)
    # Before parsing, without recursion: json.loads recurses, and a 1,000-deep body exhausts it.
    depth, limit = json_depth(body), LIMITS["max_json_depth"]
    if depth > limit:
        raise InvalidRequest(f"request body is JSON nested {depth} levels deep; the limit is {limit}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    where = lone_surrogate_path(document)
    if where is not None:
        raise InvalidRequest(
            f"{where} holds a lone UTF-16 surrogate escape (e.g. \\ud800), which is not text; "
            "send valid Unicode", field=where)
    return document


async def _skip_iteration(request: Request) -> int | None:
    body = await _read_body(request, _CONTROL_BODY_BYTES)
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    iteration = document.get("iteration") if isinstance(document, dict) else None
    if iteration is None:
        return None
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise InvalidRequest("iteration must be a batch iteration index (an integer >= 0)", field="iteration")
    return iteration


def _error_response(exc: EngineError) -> JSONResponse:
    headers = {"Retry-After": "2"} if exc.status in (429, 503) else None
    return SafeJSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)
