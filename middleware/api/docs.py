"""Interactive API docs at /v1/docs, from the Swagger UI that ships in a Python package.

FastAPI's default page loads Swagger UI from a CDN, so it shows a blank page on a machine with
no internet (a team's GPU box, a locked-down VPC). The assets come from ``swagger-ui-bundle-v2``
instead. URLs are relative, so the page also works behind an API Gateway stage prefix.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/v1/docs/assets"


def mount_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/v1/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{app.title} — API docs",
            swagger_js_url="docs/assets/swagger-ui-bundle.js",
            swagger_css_url="docs/assets/swagger-ui.css",
            swagger_favicon_url="docs/assets/favicon-32x32.png",
        )
