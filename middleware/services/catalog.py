"""Read-only listings: models and endpoints."""

from __future__ import annotations

from middleware.ports import Compute, EndpointState, ModelCatalog, ModelInfo


class CatalogService:
    def __init__(self, catalog: ModelCatalog, compute: Compute) -> None:
        self._catalog = catalog
        self._compute = compute

    def models(self, type: str | None = None) -> list[ModelInfo]:
        return self._catalog.list(type)

    def endpoint_states(self) -> list[EndpointState]:
        """Every configured endpoint with its state (InService, OutOfService with the reason, ...)."""
        return self._compute.endpoints()
