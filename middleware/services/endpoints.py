"""Endpoint administration: checked specs in, the EndpointAdmin port does the work.

Who may call what (admins write, everyone reads) is decided by the API from the user's role;
this service checks the specs with the domain's rules so no caller reaches the port with a bad one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from middleware.domain.errors import InvalidInput, NotFound
from middleware.domain.instance_types import (
    INSTANCE_TYPES,
    InstanceType,
    validate_endpoint_spec,
    validate_scale,
)
from middleware.ports import EndpointState
from middleware.ports_endpoints import (
    EndpointAdmin,
    EndpointDescription,
    EndpointsNotManaged,
    EndpointStateChange,
)

log = logging.getLogger(__name__)

DETAIL_TYPE = "SageMaker Endpoint State Change"
# EventBridge spells the status IN_SERVICE; DescribeEndpoint spells it InService.
_UPPER_SNAKE = re.compile(r"^[A-Z]+(_[A-Z]+)*$")


def _status_spelling(status: str) -> str:
    if _UPPER_SNAKE.match(status):
        return "".join(part.capitalize() for part in status.split("_"))
    return status


def _tags(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):  # the API's [{"Key": ..., "Value": ...}] shape
        return {str(t.get("Key")): str(t.get("Value", "")) for t in raw if isinstance(t, dict) and "Key" in t}
    return {}


def parse_endpoint_state_event(event: Any) -> EndpointStateChange | None:
    """The state change an EventBridge event reports, or None when it is some other event.

    Raises ValueError for an event of the right type that lacks the endpoint's name or status.
    """
    if not isinstance(event, dict) or event.get("source") != "aws.sagemaker":
        return None
    if event.get("detail-type") != DETAIL_TYPE:
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise ValueError("endpoint state event without a 'detail' object")
    name, status = detail.get("EndpointName"), detail.get("EndpointStatus")
    if not isinstance(name, str) or not name or not isinstance(status, str) or not status:
        raise ValueError("endpoint state event without detail.EndpointName and detail.EndpointStatus")
    reason = detail.get("FailureReason")
    return EndpointStateChange(
        endpoint_name=name,
        status=_status_spelling(status),
        failure_reason=reason if isinstance(reason, str) and reason else None,
        tags=_tags(detail.get("Tags")),
    )


class EndpointService:
    def __init__(
        self,
        admin: EndpointAdmin,
        default_image: str | None = None,
        configured: Callable[[], list[EndpointState]] | None = None,
    ) -> None:
        """``configured`` lists endpoints named in settings rather than made by ``admin`` (AWS
        mode's SDCLOUD_SAGEMAKER_ENDPOINTS): listed and described beside the managed ones,
        never changed."""
        self._admin = admin
        self._default_image = default_image
        self._configured = configured

    def _configured_only(self, managed_names: set[str]) -> list[EndpointDescription]:
        if self._configured is None:
            return []
        return [
            EndpointDescription(name=e.name, kind=e.kind, status=e.status, detail=e.detail)
            for e in self._configured()
            if e.name not in managed_names
        ]

    def _managed(self, name: str) -> EndpointDescription:
        """The endpoint ``name`` as the admin manages it; refuses one only settings name."""
        found = self._admin.describe(name)
        if found is not None:
            return found
        if any(e.name == name for e in self._configured_only(set())):
            raise EndpointsNotManaged(
                f"endpoint {name!r} is named in the settings (SDCLOUD_SAGEMAKER_ENDPOINTS), not managed "
                "through the API: change it in SageMaker and the settings instead"
            )
        raise NotFound(f"no endpoint named {name[:80]!r}")

    @staticmethod
    def instance_types() -> tuple[InstanceType, ...]:
        return INSTANCE_TYPES

    def create(self, raw: dict[str, Any]) -> tuple[EndpointDescription, bool]:
        """(description, created): False when an identical endpoint already existed."""
        self._allowed("create")
        spec = validate_endpoint_spec(raw, self._default_image)
        return self._admin.create(spec)

    def list(self) -> list[EndpointDescription]:
        managed = self._admin.list()
        return managed + self._configured_only({e.name for e in managed})

    def describe(self, name: str) -> EndpointDescription:
        found = self._admin.describe(name)
        if found is None:
            found = next((e for e in self._configured_only(set()) if e.name == name), None)
        if found is None:
            raise NotFound(f"no endpoint named {name[:80]!r}")
        return found

    def _allowed(self, verb: str) -> None:
        refusal = self._admin.refusal(verb)
        if refusal is not None:
            raise refusal

    def scale(self, name: str, min_instances: Any, max_instances: Any) -> EndpointDescription:
        self._allowed("scale")
        current = self._managed(name)
        low, high = validate_scale(current.kind, min_instances, max_instances)
        try:
            return self._admin.scale(name, low, high)
        except KeyError:
            raise NotFound(f"no endpoint named {name[:80]!r}") from None

    def stop(self, name: str) -> EndpointDescription:
        self._allowed("stop")
        self._managed(name)
        try:
            return self._admin.stop(name)
        except KeyError:
            raise NotFound(f"no endpoint named {name[:80]!r}") from None

    def delete(self, name: str) -> None:
        self._allowed("delete")
        self._managed(name)
        self._admin.delete(name)

    def handle_state_event(self, event: Any) -> EndpointStateChange | None:
        """EventBridge's report of an endpoint's new status; None for events that are not one."""
        try:
            change = parse_endpoint_state_event(event)
        except ValueError as exc:
            raise InvalidInput([], str(exc)) from None
        if change is None:
            return None
        log.info("endpoint %s is now %s", change.endpoint_name, change.status)
        self._admin.state_changed(change)
        return change


def endpoint_state_handler(runtime: Callable[[], Any]) -> Callable[..., dict[str, Any]]:
    """A Lambda handler for EventBridge's endpoint state changes. ``runtime()`` (called at the
    first event, not at import) returns an object whose ``services.endpoints`` is the service."""

    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        service = runtime().services.endpoints
        if service is None:
            raise RuntimeError("this deployment has no endpoint service to report state changes to")
        try:
            change = service.handle_state_event(event)
        except InvalidInput as exc:
            # A malformed event would fail again on every retry: record it and let it go.
            log.warning("ignored an endpoint state event: %s", exc.message)
            return {"handled": False, "reason": exc.message}
        if change is None:
            return {"handled": False, "reason": "not a SageMaker Endpoint State Change event"}
        return {"handled": True, "endpoint": change.endpoint_name, "status": change.status}

    return handler
