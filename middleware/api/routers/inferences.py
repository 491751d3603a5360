"""Inference jobs: submit, read (with long-poll), list, cancel."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from middleware.api.deps import current_user, get_services, url_builder
from middleware.api.payload_schema import create_inference_schema
from middleware.api.problems import problem_responses
from middleware.api.schemas import CreateInference, JobList, JobView
from middleware.api.views import job_view
from middleware.ports import User

router = APIRouter(prefix="/v1/inferences", tags=["inferences"])

MAX_WAIT_S = 30


# Stateful API fuzzers and generated clients follow these from a created job to its own routes.
_JOB_LINKS = {
    "GetInference": {"operationId": "get_inference", "parameters": {"job_id": "$response.body#/id"}},
    "CancelInference": {"operationId": "cancel_inference", "parameters": {"job_id": "$response.body#/id"}},
    "SkipInference": {"operationId": "skip_inference", "parameters": {"job_id": "$response.body#/id"}},
}


async def _create_body(request: Request) -> CreateInference:
    """The submit body, parsed here rather than by FastAPI so that the served schema can be the
    contract's typed one (``openapi_extra``) while pydantic still checks the envelope."""
    raw = await request.body()
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "malformed JSON", "ctx": {"error": str(exc)}}]
        ) from None
    try:
        return CreateInference.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


@router.post(
    "",
    operation_id="create_inference",
    response_model=JobView,
    status_code=202,
    responses={
        202: {"description": "the job, queued", "links": _JOB_LINKS},
        200: {
            "model": JobView,
            "description": "a retry with the same Idempotency-Key: the first job",
            "links": _JOB_LINKS,
        },
        **problem_responses(400, 401, 413, 422, 500),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": create_inference_schema()}}}
    },
)
async def create_inference(
    request: Request,
    user: User = Depends(current_user),
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="retries with the same key return the first job",
    ),
) -> JSONResponse:
    body = await _create_body(request)
    services = get_services(request)
    job, created = await run_in_threadpool(
        services.inferences.submit, user, body.task, body.payload, body.checkpoint, body.endpoint, idempotency_key
    )
    return JSONResponse(
        job_view(job, url_builder(request)),
        status_code=202 if created else 200,
        headers={"Location": f"/v1/inferences/{job.id}"},
    )


@router.get(
    "/{job_id}",
    operation_id="get_inference",
    response_model=JobView,
    responses=problem_responses(400, 401, 404, 500),
)
async def get_inference(
    job_id: str,
    request: Request,
    user: User = Depends(current_user),
    wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="seconds to wait for a change (long-poll)"),
    version: int | None = Query(
        None, ge=0, description="the version the client has; wait for a different one"
    ),
) -> JSONResponse:
    inferences = get_services(request).inferences
    if wait > 0:
        job = await inferences.wait_for_change(user, job_id, version, wait)
    else:
        # Off the event loop: in AWS mode a read also relays the container's progress (S3, DynamoDB).
        job = await run_in_threadpool(inferences.get, user, job_id)
    return JSONResponse(job_view(job, url_builder(request)))


@router.get(
    "",
    operation_id="list_inferences",
    response_model=JobList,
    responses=problem_responses(400, 401, 500),
)
async def list_inferences(
    request: Request,
    user: User = Depends(current_user),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=512, description="next_cursor of the previous page"),
) -> JSONResponse:
    jobs, next_cursor = get_services(request).inferences.list(user, limit, cursor)
    url_for = url_builder(request)
    return JSONResponse({"items": [job_view(j, url_for) for j in jobs], "next_cursor": next_cursor})


@router.delete(
    "/{job_id}",
    operation_id="cancel_inference",
    response_model=JobView,
    responses=problem_responses(401, 404, 409, 500),
)
async def cancel_inference(job_id: str, request: Request, user: User = Depends(current_user)) -> JSONResponse:
    job = get_services(request).inferences.cancel(user, job_id)
    return JSONResponse(job_view(job, url_builder(request)))


@router.post(
    "/{job_id}/skip",
    operation_id="skip_inference",
    response_model=JobView,
    status_code=202,
    responses=problem_responses(401, 404, 409, 500),
)
async def skip_inference(job_id: str, request: Request, user: User = Depends(current_user)) -> JSONResponse:
    """End the batch iteration the job is sampling (its images so far are kept) and go on with the
    next one, like the WebUI's Skip."""
    job = await run_in_threadpool(get_services(request).inferences.skip, user, job_id)
    return JSONResponse(job_view(job, url_builder(request)), status_code=202)
