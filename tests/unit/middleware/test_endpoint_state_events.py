"""EventBridge 'SageMaker Endpoint State Change' events (recorded samples) parsed, and the Lambda
handler's answers for events it does not handle."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from middleware.services.endpoints import EndpointService, endpoint_state_handler, parse_endpoint_state_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict:
    return json.loads((EVENTS / f"eventbridge_endpoint_{name}.json").read_text())


@pytest.mark.parametrize(
    ("name", "status"), [("inservice", "InService"), ("failed", "Failed"), ("updating", "Updating")]
)
def test_samples_parse_to_describe_endpoint_spelling(name, status):
    change = parse_endpoint_state_event(sample(name))
    assert change is not None
    assert (change.endpoint_name, change.status) == ("sd-async", status)
    assert change.tags == {"sdcloud:managed": "true", "sdcloud:kind": "async"}


def test_the_failure_reason_is_kept():
    change = parse_endpoint_state_event(sample("failed"))
    assert change is not None and "did not pass the ping health check" in (change.failure_reason or "")
    assert parse_endpoint_state_event(sample("inservice")).failure_reason is None


def test_tags_in_the_api_list_shape_and_camel_case_status_are_read_too():
    event = sample("inservice")
    event["detail"]["Tags"] = [{"Key": "sdcloud:managed", "Value": "true"}]
    event["detail"]["EndpointStatus"] = "InService"
    change = parse_endpoint_state_event(event)
    assert change is not None and change.status == "InService" and change.tags == {"sdcloud:managed": "true"}


def test_other_events_are_not_state_changes():
    other = sample("inservice")
    other["detail-type"] = "SageMaker Endpoint Deployment State Change"
    assert parse_endpoint_state_event(other) is None
    assert parse_endpoint_state_event({"source": "aws.events", "detail-type": "Scheduled Event"}) is None
    assert parse_endpoint_state_event("nonsense") is None


def test_a_state_change_without_its_name_is_an_error():
    event = sample("updating")
    del event["detail"]["EndpointName"]
    with pytest.raises(ValueError, match="EndpointName"):
        parse_endpoint_state_event(event)


class _NoChanges:
    """The smallest EndpointAdmin for the handler's own answers: it must not be asked anything."""

    def refusal(self, verb):
        return None

    def state_changed(self, event):
        raise AssertionError(f"not a state change the handler should pass on: {event}")


def test_handler_answers_for_events_it_does_not_handle():
    service = EndpointService(_NoChanges())  # type: ignore[arg-type]
    built = []
    handler = endpoint_state_handler(lambda: built.append(1) or SimpleNamespace(services=SimpleNamespace(endpoints=service)))
    assert built == []  # nothing is built at import or wrap time
    broken = sample("failed")
    del broken["detail"]["EndpointStatus"]
    answer = handler(broken, None)
    assert answer["handled"] is False and "EndpointStatus" in answer["reason"]
    assert handler({"source": "aws.s3"}, None) == {
        "handled": False,
        "reason": "not a SageMaker Endpoint State Change event",
    }


def test_the_entry_point_imports_without_aws_settings():
    import middleware.entrypoints.lambda_endpoint_state as entry

    assert callable(entry.handler)
