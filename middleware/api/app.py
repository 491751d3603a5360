"""The FastAPI application factory. Everything it serves comes from the ``Services`` it is given."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from middleware import __version__
from middleware.api.body_limit import BodySizeLimit
from middleware.api.docs import mount_docs
from middleware.api.problems import install_problem_handlers, problems_in_openapi
from middleware.api.routers import blobs, endpoints, inferences, meta, models, uploads
from middleware.domain.generation_rules import MAX_BODY_BYTES
from middleware.services.bundle import Services


def create_app(
    services: Services, *, public_base_url: str | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    app = FastAPI(
        title="SD Cloud middleware",
        version=__version__,
        description="Stable Diffusion WebUI jobs on your own GPUs. Errors are application/problem+json.",
        openapi_url="/v1/openapi.json",
        docs_url=None,  # served below from the packaged Swagger UI: no CDN, so it works offline
        redoc_url=None,
    )
    app.state.services = services
    app.state.public_base_url = public_base_url.rstrip("/") if public_base_url else None
    install_problem_handlers(app)
    routers = [module.router for module in (meta, inferences, endpoints, models, uploads, blobs)]
    for router in routers:
        app.include_router(router)
    # The routes themselves, for 405 answers that list every method of a resource.
    app.state.api_routes = [route for router in routers for route in router.routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = problems_in_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    mount_docs(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, exempt_prefixes=(uploads.PATH_PREFIX,))
    return app
