"""Endpoints: where jobs run. Everyone may list and describe them; only admins change them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from middleware.api.deps import current_user, get_services
from middleware.api.problems import problem_responses
from middleware.api.schemas import CreateEndpoint, EndpointList, EndpointView, ScaleEndpoint
from middleware.domain.errors import Forbidden
from middleware.ports import User
from middleware.ports_endpoints import EndpointsNotManaged
from middleware.services.endpoints import EndpointService

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])


def require_admin(user: User = Depends(current_user)) -> User:
    if user.role != "admin":
        raise Forbidden(f"only an admin may change endpoints; {user.name!r} is {user.role!r}")
    return user


def _service(request: Request) -> EndpointService:
    service = get_services(request).endpoints
    if service is None:
        raise EndpointsNotManaged("this deployment's endpoints are configured, not managed through the API")
    return service


# Plain ``def`` everywhere: the answers wait on a container or on SageMaker, off the event loop.
@router.get(
    "", operation_id="list_endpoints", response_model=EndpointList, responses=problem_responses(401, 500)
)
def list_endpoints(request: Request, user: User = Depends(current_user)) -> JSONResponse:
    services = get_services(request)
    if services.endpoints is not None:
        items = [e.view() for e in services.endpoints.list()]
    else:
        items = [
            {"name": e.name, "kind": e.kind, "status": e.status, "detail": e.detail}
            for e in services.catalog.endpoint_states()
        ]
    return JSONResponse({"items": items})


@router.post(
    "",
    operation_id="create_endpoint",
    status_code=201,
    response_model=EndpointView,
    responses={
        200: {"model": EndpointView, "description": "an identical endpoint already existed (a retry)"},
        **problem_responses(400, 401, 403, 409, 500),
    },
    description="Admins only. The name is the idempotency key: repeating a create with the same kind, "
    "instance type and image answers 200 with the existing endpoint; a different spec is 409. An "
    "Idempotency-Key header is therefore not needed (and ignored). Scaling is applied once SageMaker "
    "reports the endpoint InService (scaling: pending until then). Local mode refuses with 409.",
)
def create_endpoint(
    body: CreateEndpoint, request: Request, user: User = Depends(require_admin)
) -> JSONResponse:
    raw: dict[str, Any] = {k: v for k, v in body.model_dump().items() if v is not None}
    described, created = _service(request).create(raw)
    headers = {"Location": f"/v1/endpoints/{described.name}"}
    return JSONResponse(described.view(), status_code=201 if created else 200, headers=headers)


@router.get(
    "/{name}",
    operation_id="get_endpoint",
    response_model=EndpointView,
    responses=problem_responses(401, 404, 500),
)
def get_endpoint(name: str, request: Request, user: User = Depends(current_user)) -> JSONResponse:
    return JSONResponse(_service(request).describe(name).view())


@router.post(
    "/{name}/scale",
    operation_id="scale_endpoint",
    response_model=EndpointView,
    responses=problem_responses(400, 401, 403, 404, 409, 500),
    description="Admins only. New instance bounds (min 0 only for async). A stopped real-time endpoint "
    "starts again.",
)
def scale_endpoint(
    name: str, body: ScaleEndpoint, request: Request, user: User = Depends(require_admin)
) -> JSONResponse:
    return JSONResponse(_service(request).scale(name, body.min_instances, body.max_instances).view())


@router.post(
    "/{name}/stop",
    operation_id="stop_endpoint",
    response_model=EndpointView,
    responses=problem_responses(401, 403, 404, 409, 500),
    description="Admins only. No instances until scaled again: async keeps the endpoint with min = max = 0 "
    "(jobs queue); real-time removes the endpoint but keeps its model and config.",
)
def stop_endpoint(name: str, request: Request, user: User = Depends(require_admin)) -> JSONResponse:
    return JSONResponse(_service(request).stop(name).view())


@router.delete(
    "/{name}",
    operation_id="delete_endpoint",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 409, 500),
    description="Admins only. Removes the endpoint, its config, model, scaling policies, alarm and "
    "scalable target.",
)
def delete_endpoint(name: str, request: Request, user: User = Depends(require_admin)) -> Response:
    _service(request).delete(name)
    return Response(status_code=204)
