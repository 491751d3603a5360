"""The set of services the API is built from (one object to hand to ``create_app``)."""

from __future__ import annotations

from dataclasses import dataclass

from middleware.services.auth import AuthService
from middleware.services.blobs import BlobAccess
from middleware.services.catalog import CatalogService
from middleware.services.endpoints import EndpointService
from middleware.services.inferences import InferenceService
from middleware.services.job_events import JobEventHandler
from middleware.services.model_library import ModelLibrary


@dataclass(frozen=True)
class Services:
    auth: AuthService
    inferences: InferenceService
    events: JobEventHandler
    catalog: CatalogService
    blobs: BlobAccess
    mode: str = "local"
    # None: the deployment lists its endpoints through ``catalog`` only (no admin operations).
    endpoints: EndpointService | None = None
    # None: no model library (GET /v1/models lists the operator's catalog only).
    library: ModelLibrary | None = None
