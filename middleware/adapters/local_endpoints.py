"""Local mode's endpoints: the containers named in SDCLOUD_CONTAINER_URL, listed, never changed.

The API cannot start or stop a process on the operator's machine, so every change is refused
with the setting to edit instead (409, never a 500).
"""

from __future__ import annotations

from middleware.domain.instance_types import EndpointSpec
from middleware.ports import Compute
from middleware.ports_endpoints import (
    EndpointDescription,
    EndpointsNotManaged,
    EndpointStateChange,
)


class LocalEndpointAdmin:
    def __init__(self, compute: Compute) -> None:
        self._compute = compute

    def refusal(self, verb: str) -> EndpointsNotManaged:
        return self._refuse(verb)

    def _refuse(self, verb: str) -> EndpointsNotManaged:
        names = ", ".join(e.name for e in self._compute.endpoints())
        return EndpointsNotManaged(
            f"local mode cannot {verb} endpoints: it runs the inference containers listed in "
            f"SDCLOUD_CONTAINER_URL ({names}); edit that setting (name=url,name=url,...) and restart "
            "the middleware instead"
        )

    def create(self, spec: EndpointSpec) -> tuple[EndpointDescription, bool]:
        raise self._refuse("create")

    def list(self) -> list[EndpointDescription]:
        return [
            EndpointDescription(name=e.name, kind=e.kind, status=e.status, detail=e.detail)
            for e in self._compute.endpoints()
        ]

    def describe(self, name: str) -> EndpointDescription | None:
        return next((e for e in self.list() if e.name == name), None)

    def scale(self, name: str, min_instances: int, max_instances: int) -> EndpointDescription:
        raise self._refuse("scale")

    def stop(self, name: str) -> EndpointDescription:
        raise self._refuse("stop")

    def delete(self, name: str) -> bool:
        raise self._refuse("delete")

    def state_changed(self, event: EndpointStateChange) -> None:
        """Nothing reports state changes in local mode; the containers are asked when listed."""
