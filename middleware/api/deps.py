"""Request-scoped dependencies: the services, the calling user, URL building."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from middleware.domain.errors import Unauthorized
from middleware.ports import User
from middleware.services.bundle import Services

# auto_error=False: we answer 401 problem+json ourselves (FastAPI would say 403 without a header).
_bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <api key>")


def get_services(request: Request) -> Services:
    return request.app.state.services


def current_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> User:
    if credentials is None:
        header = request.headers.get("authorization")
        if header:
            raise Unauthorized("the Authorization header must read 'Bearer <api key>'")
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <api key>'")
    return get_services(request).auth.authenticate(credentials.credentials)


def url_builder(request: Request) -> Callable[[str], str]:
    """Signed blob URLs, made absolute against the public base URL (setting) or the request."""
    services = get_services(request)
    base = request.app.state.public_base_url or str(request.base_url).rstrip("/")

    def url_for(key: str) -> str:
        url = services.blobs.url_for(key)
        return base + url if url.startswith("/") else url

    return url_for
