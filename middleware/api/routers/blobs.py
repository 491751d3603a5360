"""Blobs behind signed, expiring URLs (no bearer key: the signature is the credential)."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from middleware.api.deps import get_services
from middleware.api.problems import problem_responses

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])

_CHUNK = 256 * 1024


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


@router.get(
    "/{key:path}",
    operation_id="get_blob",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the blob's bytes",
            "content": {"application/octet-stream": {}, "image/png": {}, "application/json": {}},
        },
        **problem_responses(400, 403, 404, 500),
    },
)
def get_blob(
    key: str,
    request: Request,
    expires: int = Query(..., description="Unix time after which the link stops working"),
    sig: str = Query(..., max_length=128, description="HMAC-SHA256 of the key and expiry"),
) -> StreamingResponse:
    stream = get_services(request).blobs.open_signed(key, expires, sig)
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return StreamingResponse(
        _chunks(stream), media_type=media_type, headers={"Cache-Control": "private, max-age=300"}
    )
