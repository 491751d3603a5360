"""The HTTP API (FastAPI): routers per resource, bearer auth, problem+json errors."""
