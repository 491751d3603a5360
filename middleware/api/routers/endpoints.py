"""Endpoints: where jobs run."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from middleware.api.deps import current_user, get_services
from middleware.api.problems import problem_responses
from middleware.api.schemas import EndpointList
from middleware.ports import User

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])


# Plain ``def``: asking the container how it is may wait on the network, off the event loop.
@router.get(
    "", operation_id="list_endpoints", response_model=EndpointList, responses=problem_responses(401, 500)
)
def list_endpoints(request: Request, user: User = Depends(current_user)) -> JSONResponse:
    items = [
        {"name": e.name, "kind": e.kind, "status": e.status, "detail": e.detail}
        for e in get_services(request).catalog.endpoint_states()
    ]
    return JSONResponse({"items": items})
