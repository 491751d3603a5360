"""The EndpointAdmin port: creating, scaling and removing the endpoints jobs run on.

AWS mode implements it over SageMaker + Application Auto Scaling + CloudWatch
(``adapters/sagemaker_endpoints.py``); local mode lists the configured containers and refuses
changes (``adapters/local_endpoints.py``). Kept apart from ``ports.py`` so that module stays
about jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from middleware.domain.errors import Conflict
from middleware.domain.instance_types import EndpointSpec


class EndpointsNotManaged(Conflict):
    """This deployment's endpoints are configured, not created through the API (409)."""

    code = "endpoints_not_managed"


class EndpointExists(Conflict):
    """An endpoint with that name exists with a different spec (409)."""

    code = "endpoint_exists"


class EndpointBusy(Conflict):
    """SageMaker is still creating, updating or deleting the endpoint (409: retry later)."""

    code = "endpoint_busy"


@dataclass(frozen=True)
class EndpointDescription:
    """What an admin sees of one endpoint. None: not known for this kind (local containers)."""

    name: str
    kind: str  # "async" | "realtime" | "local"
    status: str  # SageMaker's EndpointStatus, or "Stopped" for a real-time endpoint stopped by us
    detail: str = ""
    instance_type: str | None = None
    image: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    current_instances: int | None = None
    desired_instances: int | None = None
    backlog: float | None = None  # ApproximateBacklogSize (async), best effort
    failure_reason: str | None = None
    scaling: str | None = None  # "applied" | "pending" | "none"

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "detail": self.detail,
            "instance_type": self.instance_type,
            "image": self.image,
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
            "current_instances": self.current_instances,
            "desired_instances": self.desired_instances,
            "backlog": self.backlog,
            "failure_reason": self.failure_reason,
            "scaling": self.scaling,
        }


@dataclass(frozen=True)
class EndpointStateChange:
    """One 'SageMaker Endpoint State Change' event, parsed."""

    endpoint_name: str
    status: str  # normalised to DescribeEndpoint's spelling: InService, Failed, Updating, ...
    failure_reason: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class EndpointAdmin(Protocol):
    def refusal(self, verb: str) -> Conflict | None:
        """Why this deployment cannot ``verb`` ("create", "scale", ...) endpoints at all, or None.
        Asked before a spec is checked, so a refusal is not hidden behind field errors."""

    def create(self, spec: EndpointSpec) -> tuple[EndpointDescription, bool]:
        """Create the endpoint; (description, True). When one with that name exists with the same
        kind, instance type and image: (its description, False), nothing changes. Raises
        EndpointExists for a different spec, EndpointsNotManaged where endpoints are configured."""

    def list(self) -> list[EndpointDescription]: ...

    def describe(self, name: str) -> EndpointDescription | None: ...

    def scale(self, name: str, min_instances: int, max_instances: int) -> EndpointDescription:
        """New bounds (already checked for the endpoint's kind). Raises KeyError for an unknown name."""

    def stop(self, name: str) -> EndpointDescription:
        """Run no instances until scaled again. Raises KeyError for an unknown name."""

    def delete(self, name: str) -> bool:
        """Remove the endpoint and everything made for it; False when there was nothing."""

    def state_changed(self, event: EndpointStateChange) -> None:
        """React to SageMaker's report (InService: apply the scaling policies). Ignores
        endpoints that are not ours."""
