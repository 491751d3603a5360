"""What moto cannot show (its endpoints are InService at once, nothing is ever busy), through
botocore's Stubber on real clients: scaling waits for InService, and AWS's refusals surface as
answers rather than 500s."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from middleware.adapters.sagemaker_endpoints import DIMENSION, SageMakerEndpointAdmin, resource_id
from middleware.ports_endpoints import EndpointBusy, EndpointStateChange

NAME = "sd-slow"
CONFIG_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{NAME}"
WHEN = datetime(2026, 12, 1, tzinfo=timezone.utc)
TAGS = [
    {"Key": "sdcloud:managed", "Value": "true"},
    {"Key": "sdcloud:kind", "Value": "async"},
    {"Key": "sdcloud:min-instances", "Value": "0"},
    {"Key": "sdcloud:max-instances", "Value": "2"},
]


@pytest.fixture
def stubbed():
    session = boto3.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
    sm, aas, cw = (session.client(n) for n in ("sagemaker", "application-autoscaling", "cloudwatch"))
    stubs = [Stubber(sm), Stubber(aas), Stubber(cw)]
    for stub in stubs:
        stub.activate()
    admin = SageMakerEndpointAdmin(
        sm, aas, cw, bucket="sdcloud-blobs", role_arn="arn:aws:iam::123456789012:role/r",
        success_topic_arn="arn:aws:sns:us-east-1:123456789012:ok", error_topic_arn="arn:aws:sns:us-east-1:123456789012:err",
        clock=lambda: WHEN.timestamp(),
    )
    yield admin, *stubs
    for stub in stubs:
        stub.assert_no_pending_responses()
        stub.deactivate()


def expect_managed_config(sm: Stubber) -> None:
    sm.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": NAME, "EndpointConfigArn": CONFIG_ARN, "CreationTime": WHEN,
         "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": NAME, "InstanceType": "ml.g5.xlarge",
                                 "InitialInstanceCount": 1}]},
        {"EndpointConfigName": NAME},
    )
    sm.add_response("list_tags", {"Tags": TAGS}, {"ResourceArn": CONFIG_ARN})


def endpoint(status: str, current: int = 0) -> dict:
    return {"EndpointName": NAME, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{NAME}",
            "EndpointConfigName": NAME, "EndpointStatus": status, "CreationTime": WHEN, "LastModifiedTime": WHEN,
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": current,
                                    "DesiredInstanceCount": 1}]}


def test_a_creating_endpoint_gets_no_scaling_yet(stubbed):
    admin, sm, aas, cw = stubbed
    expect_managed_config(sm)
    sm.add_response("describe_endpoint", endpoint("Creating"), {"EndpointName": NAME})
    aas.add_response(
        "describe_scalable_targets", {"ScalableTargets": []},
        {"ServiceNamespace": "sagemaker", "ResourceIds": [resource_id(NAME)], "ScalableDimension": DIMENSION},
    )
    # No register_scalable_target: the Stubber fails on any call not queued here.
    sm.add_response("describe_model", {"ModelName": NAME, "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/x",
                                       "CreationTime": WHEN, "PrimaryContainer": {"Image": "img"}}, {"ModelName": NAME})
    cw.add_response("get_metric_statistics", {"Datapoints": []}, None)
    described = admin.describe(NAME)
    assert described is not None
    assert (described.status, described.scaling, described.min_instances, described.max_instances) == (
        "Creating", "pending", 0, 2
    )
    assert "starting" in described.detail


def test_scaling_refused_by_aws_stays_pending_for_the_next_event(stubbed, caplog):
    admin, sm, aas, _cw = stubbed
    expect_managed_config(sm)
    aas.add_client_error(
        "register_scalable_target", service_error_code="ValidationException",
        service_message="Endpoint is in Updating status", expected_params=None,
    )
    admin.state_changed(EndpointStateChange(endpoint_name=NAME, status="InService", tags={"sdcloud:managed": "true"}))
    assert "not applied yet" in caplog.text and "Updating" in caplog.text


def test_an_event_for_someone_elses_endpoint_costs_no_call(stubbed):
    admin, *_stubs = stubbed
    admin.state_changed(EndpointStateChange(endpoint_name="theirs", status="InService", tags={"team": "x"}))


def test_deleting_an_endpoint_sagemaker_is_updating_is_refused_before_anything_is_removed(stubbed):
    admin, sm, _aas, _cw = stubbed
    expect_managed_config(sm)
    sm.add_response("describe_endpoint", endpoint("Updating", current=1), {"EndpointName": NAME})
    # Nothing else is queued: no policy, alarm, target or endpoint call may follow.
    with pytest.raises(EndpointBusy, match="is Updating"):
        admin.delete(NAME)


def test_sagemaker_refusing_a_delete_in_a_race_is_a_busy_conflict(stubbed):
    admin, sm, aas, cw = stubbed
    expect_managed_config(sm)
    sm.add_response("describe_endpoint", endpoint("InService", current=1), {"EndpointName": NAME})
    aas.add_response("describe_scaling_policies", {"ScalingPolicies": []}, None)
    cw.add_response("delete_alarms", {}, None)
    aas.add_response("deregister_scalable_target", {}, None)
    sm.add_client_error(
        "delete_endpoint", service_error_code="ValidationException",
        service_message=f"Cannot update in-progress endpoint \"arn:aws:sagemaker:us-east-1:1:endpoint/{NAME}\".",
        expected_params={"EndpointName": NAME},
    )
    with pytest.raises(EndpointBusy, match="Cannot update in-progress endpoint"):
        admin.delete(NAME)
