"""Upload parts PUT to the middleware itself (local mode): signed URLs, streamed to disk.

The signature is the credential (no bearer key), as for the signed blob GETs. The body is never
held whole: it goes to a temp file chunk by chunk and is refused with 413 the moment it passes
the planned part size (the API's general body limit does not apply to this route).
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from middleware.api.deps import get_services
from middleware.api.problems import problem, problem_responses
from middleware.api.schemas import PartReceived
from middleware.domain.errors import NotFound

router = APIRouter(prefix="/v1/uploads", tags=["models"])
PATH_PREFIX = "/v1/uploads/"
_WRITE_BYTES = 4 * 1024 * 1024


def _too_large(number: int, expected: int) -> Response:
    return problem(
        413, f"part {number} must be exactly {expected} bytes; this body is larger", code="payload_too_large"
    )


@router.put(
    "/{upload_id}/parts/{number}",
    operation_id="put_upload_part",
    response_model=PartReceived,
    responses={
        200: {"description": "the part is stored; its ETag is in the header and the body"},
        **problem_responses(400, 403, 404, 409, 413, 500),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_upload_part(
    request: Request,
    upload_id: str = Path(..., max_length=80),
    number: int = Path(..., ge=1, le=10_000),
    expires: int = Query(..., description="Unix time after which the URL stops working"),
    signature: str = Query(..., max_length=128, description="HMAC-SHA256 of the part and expiry"),
) -> Response:
    library = get_services(request).library
    if library is None:
        raise NotFound("this deployment has no model library")
    sink, expected = await run_in_threadpool(library.part_sink, upload_id, number, expires, signature)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > expected:
        await run_in_threadpool(sink.discard)
        return _too_large(number, expected)
    total = 0
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > expected:
                await run_in_threadpool(sink.discard)
                return _too_large(number, expected)
            pending.append(chunk)
            pending_bytes += len(chunk)
            # The server hands over chunks of 64-256 KiB; one thread hop per chunk costs more
            # than the write itself, so the disk gets a few MiB of chunks at a time (as a list:
            # joining them first would copy every byte once more).
            if pending_bytes >= _WRITE_BYTES:
                await run_in_threadpool(sink.write, pending)
                pending, pending_bytes = [], 0
        if pending_bytes:
            await run_in_threadpool(sink.write, pending)
    except BaseException:
        await run_in_threadpool(sink.discard)
        raise
    if total != expected:
        await run_in_threadpool(sink.discard)
        return problem(
            400, f"part {number} must be exactly {expected} bytes; this body has {total}", code="invalid_request"
        )
    etag = await run_in_threadpool(sink.commit)
    return JSONResponse({"number": number, "size": total, "etag": etag}, headers={"ETag": etag})
