"""Models: the checkpoints jobs may name."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from middleware.api.deps import current_user, get_services
from middleware.api.problems import problem_responses
from middleware.api.schemas import ModelList
from middleware.ports import User

router = APIRouter(prefix="/v1/models", tags=["models"])


# Plain ``def``: a checkpoint new to the catalog is hashed on first listing, off the event loop.
@router.get(
    "", operation_id="list_models", response_model=ModelList, responses=problem_responses(400, 401, 500)
)
def list_models(
    request: Request,
    user: User = Depends(current_user),
    type: str | None = Query(None, max_length=64, description="e.g. checkpoint"),
) -> JSONResponse:
    items = [
        {"name": m.name, "type": m.type, "size": m.size, "sha256": m.sha256}
        for m in get_services(request).catalog.models(type)
    ]
    return JSONResponse({"items": items})
