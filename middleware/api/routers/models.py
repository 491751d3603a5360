"""Models: the library (uploads in parts, imports by URL, records) and the operator's checkpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from middleware.api.deps import current_user, get_services
from middleware.api.problems import problem_responses
from middleware.api.schemas import (
    ChangeVisibility,
    CompletedUpload,
    CompleteUpload,
    DeclareUpload,
    ImportModel,
    ImportStatusView,
    ModelList,
    ModelView,
    UploadStatusView,
)
from middleware.domain.errors import NotFound
from middleware.ports import User
from middleware.services.model_library import ModelLibrary

router = APIRouter(prefix="/v1/models", tags=["models"])

_ID = {"max_length": 300}
_UPLOAD_ID = Path(..., max_length=80, description="from POST /v1/models/uploads")


def _library(request: Request) -> ModelLibrary:
    library = get_services(request).library
    if library is None:
        raise NotFound("this deployment has no model library")
    return library


def _absolute(request: Request, view: dict[str, Any]) -> dict[str, Any]:
    """Part URLs the folder store signs are relative to the API base: make them absolute."""
    prefix = request.app.state.public_base_url or str(request.base_url).rstrip("/")
    for part in view.get("parts", []):
        if part["url"].startswith("/"):
            part["url"] = prefix + part["url"]
    return view


# Plain ``def``: a checkpoint new to the operator's folder is hashed on first listing, off the loop.
@router.get(
    "", operation_id="list_models", response_model=ModelList, responses=problem_responses(400, 401, 500)
)
def list_models(
    request: Request,
    user: User = Depends(current_user),
    type: str | None = Query(None, max_length=64, description="checkpoint, lora, embedding, vae, ..."),
    visibility: str | None = Query(None, max_length=16, description="private or public"),
    owner: str | None = Query(None, max_length=128, description="one owner's models ('operator': the folder)"),
    q: str | None = Query(None, max_length=255, description="part of the name"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=1024, description="next_cursor of the previous page"),
) -> JSONResponse:
    services = get_services(request)
    if services.library is None:
        items = [
            {"name": m.name, "type": m.type, "size": m.size, "sha256": m.sha256}
            for m in services.catalog.models(type)
        ]
        return JSONResponse({"items": items})
    page = services.library.list(
        user, type=type, visibility=visibility, owner=owner, q=q, limit=limit, cursor=cursor
    )
    # next_cursor only while there is a next page: the last page reads {"items": [...]} as before.
    if page.get("next_cursor") is None:
        page.pop("next_cursor", None)
    return JSONResponse(page)


@router.post(
    "/uploads",
    operation_id="declare_model_upload",
    response_model=UploadStatusView,
    status_code=201,
    responses={
        200: {"model": UploadStatusView, "description": "already stored (zero bytes to send), or a retry"},
        201: {"description": "the upload plan: PUT each part to its URL, then complete"},
        **problem_responses(400, 401, 404, 409, 422, 500),
    },
)
def declare_model_upload(
    request: Request,
    body: DeclareUpload,
    user: User = Depends(current_user),
    idempotency_key: str | None = Header(
        default=None, alias="Idempotency-Key", min_length=1, max_length=200,
        description="retries with the same key return the first upload",
    ),
) -> JSONResponse:
    status, view = _library(request).declare(
        user, body.name, body.type, body.size, body.sha256, body.visibility, idempotency_key
    )
    return JSONResponse(_absolute(request, view), status_code=status)


@router.get(
    "/uploads/{upload_id}",
    operation_id="get_model_upload",
    response_model=UploadStatusView,
    responses=problem_responses(400, 401, 404, 500),
)
def get_model_upload(request: Request, upload_id: str = _UPLOAD_ID, user: User = Depends(current_user)) -> JSONResponse:
    return JSONResponse(_absolute(request, _library(request).upload_status(user, upload_id)))


@router.post(
    "/uploads/{upload_id}/complete",
    operation_id="complete_model_upload",
    response_model=CompletedUpload,
    responses={
        200: {"description": "verified and stored: the model record"},
        202: {"description": "assembled; its sha256 is being checked: follow GET /v1/models/uploads/{id}"},
        **problem_responses(400, 401, 404, 409, 422, 500),
    },
)
def complete_model_upload(
    request: Request,
    upload_id: str = _UPLOAD_ID,
    body: CompleteUpload | None = Body(default=None),
    user: User = Depends(current_user),
) -> JSONResponse:
    parts = [p.model_dump() for p in body.parts] if body is not None else []
    answer = _library(request).complete(user, upload_id, parts)
    return JSONResponse(answer, status_code=202 if answer.get("status") == "verifying" else 200)


@router.delete(
    "/uploads/{upload_id}",
    operation_id="abort_model_upload",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "aborted; the parts are freed"}, **problem_responses(400, 401, 404, 409, 500)},
)
def abort_model_upload(request: Request, upload_id: str = _UPLOAD_ID, user: User = Depends(current_user)) -> Response:
    _library(request).abort(user, upload_id)
    return Response(status_code=204)


@router.post(
    "/imports",
    operation_id="import_model",
    response_model=ImportStatusView,
    status_code=202,
    responses={202: {"description": "the import runs in the background"}, **problem_responses(400, 401, 404, 500)},
)
def import_model(request: Request, body: ImportModel, user: User = Depends(current_user)) -> JSONResponse:
    started = _library(request).start_import(user, body.url, body.name, body.type, body.sha256, body.visibility)
    return JSONResponse(started, status_code=202)


@router.get(
    "/imports/{import_id}",
    operation_id="get_model_import",
    response_model=ImportStatusView,
    responses=problem_responses(400, 401, 404, 500),
)
def get_model_import(
    request: Request, import_id: str = Path(..., max_length=80), user: User = Depends(current_user)
) -> JSONResponse:
    return JSONResponse(_library(request).import_status(user, import_id))


@router.get(
    "/{model_id:path}",
    operation_id="get_model",
    response_model=ModelView,
    responses=problem_responses(400, 401, 404, 500),
)
def get_model(request: Request, model_id: str = Path(..., **_ID), user: User = Depends(current_user)) -> JSONResponse:
    return JSONResponse(_library(request).describe(user, model_id))


@router.patch(
    "/{model_id:path}",
    operation_id="update_model",
    response_model=ModelView,
    responses=problem_responses(400, 401, 403, 404, 500),
)
def update_model(
    request: Request, body: ChangeVisibility, model_id: str = Path(..., **_ID), user: User = Depends(current_user)
) -> JSONResponse:
    return JSONResponse(_library(request).set_visibility(user, model_id, body.visibility))


@router.delete(
    "/{model_id:path}",
    operation_id="delete_model",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "deleted"}, **problem_responses(400, 401, 403, 404, 500)},
)
def delete_model(request: Request, model_id: str = Path(..., **_ID), user: User = Depends(current_user)) -> Response:
    _library(request).delete(user, model_id)
    return Response(status_code=204)

