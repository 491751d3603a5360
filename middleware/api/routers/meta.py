"""Liveness and identity."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from middleware import __version__
from middleware.api.deps import current_user, get_services
from middleware.api.problems import problem_responses
from middleware.api.schemas import Me, Ping
from middleware.domain.contract import CONTRACT
from middleware.ports import User

router = APIRouter(prefix="/v1", tags=["meta"])


@router.get("/ping", operation_id="ping", response_model=Ping, responses=problem_responses(500))
async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__, "mode": get_services(request).mode})


@router.get("/me", operation_id="get_me", response_model=Me, responses=problem_responses(401, 500))
async def me(user: User = Depends(current_user)) -> JSONResponse:
    return JSONResponse({"user": user.name, "role": user.role})


@router.get(
    "/contract",
    operation_id="get_contract",
    responses=problem_responses(401, 500),
    description="The generation contract: payload fields with kinds, defaults and ranges per task, limits, "
    "samplers and the schedule types each takes, upscalers, refused fields with what to do instead.",
)
async def contract(user: User = Depends(current_user)) -> JSONResponse:
    return JSONResponse(CONTRACT)
