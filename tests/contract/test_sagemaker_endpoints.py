"""The SageMaker endpoint admin over a real moto_server: create, the InService event applying
scale-to-zero, scale, stop, and a delete that leaves nothing behind.

moto puts endpoints InService at once and refuses ml.g5 (its list stops at g4dn/p3), so these
use ml.g4dn; Application Auto Scaling and CloudWatch store what they are given.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from middleware.adapters.sagemaker_endpoints import (
    DIMENSION,
    SageMakerEndpointAdmin,
    SageMakerEndpointDirectory,
    resource_id,
    wake_alarm_name,
)
from middleware.domain.errors import Conflict, InvalidInput
from middleware.domain.instance_types import EndpointSpec
from middleware.ports_endpoints import EndpointExists, EndpointStateChange
from middleware.services.endpoints import EndpointService, parse_endpoint_state_event

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud-engine:1.0"
ROLE = "arn:aws:iam::123456789012:role/sdcloud-sagemaker"  # the endpoint_admin fixture's
EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def clients(endpoint_clients):
    return endpoint_clients


@pytest.fixture
def admin(endpoint_admin) -> SageMakerEndpointAdmin:
    return endpoint_admin


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec(name: str, kind: str = "async", low: int = 0, high: int = 2) -> EndpointSpec:
    return EndpointSpec(name, "ml.g4dn.xlarge", kind, low, high, IMAGE)


def state_event(name: str, sample: str = "inservice") -> dict:
    event = json.loads((EVENTS / f"eventbridge_endpoint_{sample}.json").read_text())
    event["detail"]["EndpointName"] = name
    return event


def scaling_state(clients, name: str) -> dict:
    aas, cw = clients["application-autoscaling"], clients["cloudwatch"]
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id(name)])
    policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource_id(name))
    alarms = cw.describe_alarms(AlarmNames=[wake_alarm_name(name)])["MetricAlarms"]
    return {
        "targets": targets["ScalableTargets"],
        "policies": {p["PolicyName"]: p for p in policies["ScalingPolicies"]},
        "alarms": alarms,
    }


def remove_scaling_behind_our_back(clients, name: str) -> None:
    """As if the endpoint had just gone InService: nothing registered yet."""
    aas = clients["application-autoscaling"]
    for policy in scaling_state(clients, name)["policies"].values():
        aas.delete_scaling_policy(
            PolicyName=policy["PolicyName"], ServiceNamespace="sagemaker",
            ResourceId=resource_id(name), ScalableDimension=DIMENSION,
        )
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id(name), ScalableDimension=DIMENSION)
    clients["cloudwatch"].delete_alarms(AlarmNames=[wake_alarm_name(name)])


def assert_nothing_left(clients, name: str) -> None:
    sm = clients["sagemaker"]
    assert [e for e in sm.list_endpoints()["Endpoints"] if e["EndpointName"] == name] == []
    assert [c for c in sm.list_endpoint_configs()["EndpointConfigs"] if c["EndpointConfigName"] == name] == []
    assert [m for m in sm.list_models()["Models"] if m["ModelName"] == name] == []
    assert scaling_state(clients, name) == {"targets": [], "policies": {}, "alarms": []}
    every_alarm = clients["cloudwatch"].describe_alarms()["MetricAlarms"]
    assert [a["AlarmName"] for a in every_alarm if name in a["AlarmName"]] == []


def test_async_lifecycle_leaves_nothing_behind(clients, admin):
    name = unique("sd-async")
    service = EndpointService(admin)
    described, created = admin.create(spec(name))
    assert created and described.kind == "async" and described.status == "InService"
    assert (described.instance_type, described.image) == ("ml.g4dn.xlarge", IMAGE)

    sm = clients["sagemaker"]
    model = sm.describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == ROLE
    env = model["PrimaryContainer"]["Environment"]
    assert env["SDCLOUD_OUTPUT_STORE"] == f"s3://{admin._bucket}"  # noqa: SLF001
    assert env["SDCLOUD_MODEL_BUCKETS"] == admin._bucket  # noqa: SLF001
    config = sm.describe_endpoint_config(EndpointConfigName=name)
    async_config = config["AsyncInferenceConfig"]
    assert async_config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 1}
    assert async_config["OutputConfig"]["S3OutputPath"] == f"s3://{admin._bucket}/async-outputs/"  # noqa: SLF001
    notify = async_config["OutputConfig"]["NotificationConfig"]
    assert notify["SuccessTopic"].split(":")[-1].startswith("ok-") and notify["ErrorTopic"].split(":")[-1].startswith("err-")
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]}
    assert tags["sdcloud:managed"] == "true" and tags["sdcloud:kind"] == "async"
    endpoint_arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    assert {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=endpoint_arn)["Tags"]}["sdcloud:managed"] == "true"

    # The InService event registers scale-to-zero (moto was InService already: start from nothing).
    remove_scaling_behind_our_back(clients, name)
    assert scaling_state(clients, name) == {"targets": [], "policies": {}, "alarms": []}
    change = service.handle_state_event(state_event(name))
    assert change is not None and change.status == "InService"
    state = scaling_state(clients, name)
    [target] = state["targets"]
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (DIMENSION, 0, 2)
    tracking = state["policies"][f"sdcloud-{name}-backlog"]
    assert tracking["PolicyType"] == "TargetTrackingScaling"
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert metric["MetricName"] == "ApproximateBacklogSizePerInstance"
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": name}]
    wake = state["policies"][f"sdcloud-{name}-wake"]
    assert wake["PolicyType"] == "StepScaling"
    assert wake["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}
    ]
    [alarm] = state["alarms"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity" and alarm["Threshold"] == 1.0
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [wake["PolicyARN"]]
    # Idempotent: the same event again changes nothing.
    service.handle_state_event(state_event(name))
    again = scaling_state(clients, name)
    assert len(again["targets"]) == 1 and set(again["policies"]) == set(state["policies"]) and len(again["alarms"]) == 1

    scaled = service.scale(name, 1, 3)
    assert (scaled.min_instances, scaled.max_instances, scaled.scaling) == (1, 3, "applied")
    [target] = scaling_state(clients, name)["targets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)

    stopped = service.stop(name)
    assert (stopped.min_instances, stopped.max_instances, stopped.status) == (0, 0, "InService")
    [target] = scaling_state(clients, name)["targets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 0)

    service.delete(name)
    assert_nothing_left(clients, name)
    assert admin.describe(name) is None


def test_describe_applies_scaling_an_event_never_did(clients, admin):
    name = unique("sd-missed")
    admin.create(spec(name, low=0, high=1))
    remove_scaling_behind_our_back(clients, name)
    described = admin.describe(name)
    assert described is not None and described.scaling == "applied"
    assert (described.min_instances, described.max_instances) == (0, 1)
    assert len(scaling_state(clients, name)["policies"]) == 2
    admin.delete(name)
    assert_nothing_left(clients, name)


def test_realtime_stop_keeps_model_and_config_and_scale_starts_it_again(clients, admin):
    name = unique("sd-rt")
    described, _ = admin.create(spec(name, kind="realtime", low=1, high=2))
    assert described.kind == "realtime" and "AsyncInferenceConfig" not in clients["sagemaker"].describe_endpoint_config(
        EndpointConfigName=name
    )
    state = scaling_state(clients, name)
    [target] = state["targets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)
    [policy] = state["policies"].values()
    assert policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert state["alarms"] == []

    stopped = admin.stop(name)
    assert (stopped.status, stopped.current_instances, stopped.scaling) == ("Stopped", 0, "none")
    sm = clients["sagemaker"]
    assert [e for e in sm.list_endpoints()["Endpoints"] if e["EndpointName"] == name] == []
    assert sm.describe_model(ModelName=name)["ModelName"] == name
    assert sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigName"] == name
    assert scaling_state(clients, name) == {"targets": [], "policies": {}, "alarms": []}
    # An InService event of some earlier life must not re-register a stopped endpoint.
    admin.state_changed(_change(name))
    assert scaling_state(clients, name)["targets"] == []

    started = admin.scale(name, 1, 2)
    assert started.status == "InService" and (started.min_instances, started.max_instances) == (1, 2)
    admin.delete(name)
    assert_nothing_left(clients, name)


def _change(name: str) -> EndpointStateChange:
    change = parse_endpoint_state_event(state_event(name))
    assert change is not None
    return change


def test_create_is_idempotent_by_name_and_refuses_a_different_spec(clients, admin):
    name = unique("sd-same")
    _first, created = admin.create(spec(name))
    again, created_again = admin.create(spec(name))
    assert created and not created_again and again.name == name
    with pytest.raises(EndpointExists, match="delete it first"):
        admin.create(replace(spec(name), instance_type="ml.g4dn.2xlarge"))
    admin.delete(name)
    assert_nothing_left(clients, name)


def test_endpoints_that_are_not_ours_are_neither_listed_nor_touched(clients, admin):
    foreign = unique("theirs")
    sm = clients["sagemaker"]
    sm.create_model(ModelName=foreign, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    sm.create_endpoint_config(
        EndpointConfigName=foreign,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": foreign, "InstanceType": "ml.g4dn.xlarge",
                             "InitialInstanceCount": 1}],
    )
    ours = unique("sd-ours")
    admin.create(spec(ours))
    assert ours in [e.name for e in admin.list()] and foreign not in admin.managed()
    assert admin.describe(foreign) is None and admin.delete(foreign) is False
    with pytest.raises(EndpointExists, match="not SD Cloud's"):
        admin.create(spec(foreign))
    assert sm.describe_endpoint_config(EndpointConfigName=foreign)["EndpointConfigName"] == foreign
    admin.delete(ours)
    sm.delete_endpoint_config(EndpointConfigName=foreign)
    sm.delete_model(ModelName=foreign)


def test_a_refused_create_rolls_back_what_it_made(clients, admin):
    # moto, like a region without the type, refuses ml.g5 in CreateEndpointConfig.
    name = unique("sd-g5")
    with pytest.raises(InvalidInput, match="SageMaker refused the endpoint"):
        admin.create(replace(spec(name), instance_type="ml.g5.xlarge"))
    assert_nothing_left(clients, name)


def test_backlog_comes_from_cloudwatch(clients, admin):
    name = unique("sd-backlog")
    admin.create(spec(name))
    assert admin.describe(name).backlog is None  # no datapoint yet
    clients["cloudwatch"].put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[{"MetricName": "ApproximateBacklogSize", "Dimensions": [{"Name": "EndpointName", "Value": name}],
                     "Timestamp": datetime.now(timezone.utc), "Value": 7.0}],
    )
    assert admin.describe(name).backlog == 7.0
    admin.delete(name)


def test_directory_resolves_our_endpoints_and_caches_briefly(clients, admin):
    now = [0.0]
    directory = SageMakerEndpointDirectory(admin, ttl_s=30.0, clock=lambda: now[0])
    first = unique("sd-dir-a")
    admin.create(spec(first))
    target = directory.resolve(first)
    assert target is not None and (target.endpoint_name, target.kind) == (first, "async")
    second = unique("sd-dir-b")
    admin.create(spec(second, kind="realtime", low=1, high=1))
    assert second not in directory.names()  # cached
    now[0] = 31.0
    assert second in directory.names() and directory.resolve(second).kind == "realtime"
    assert directory.resolve("nobody-has-this") is None
    admin.delete(first)
    admin.delete(second)


def test_failed_event_applies_nothing(clients, admin, caplog):
    name = unique("sd-failed")
    admin.create(spec(name))
    remove_scaling_behind_our_back(clients, name)
    event = copy.deepcopy(state_event(name, "failed"))
    change = EndpointService(admin).handle_state_event(event)
    assert change is not None and change.status == "Failed"
    assert scaling_state(clients, name)["targets"] == []
    assert "did not pass the ping health check" in caplog.text
    admin.delete(name)
    assert_nothing_left(clients, name)


def test_an_endpoint_removed_outside_sd_cloud_is_reported_and_scale_recreates_it(clients, admin):
    name = unique("sd-gone")
    admin.create(spec(name))
    admin._remove_scaling(name)  # noqa: SLF001 - what a console user deleting the endpoint would leave
    clients["sagemaker"].delete_endpoint(EndpointName=name)
    described = admin.describe(name)
    assert (described.status, described.scaling) == ("OutOfService", "none")
    assert "missing" in described.detail
    again = admin.scale(name, 0, 1)
    assert again.status == "InService" and (again.min_instances, again.max_instances) == (0, 1)
    admin.delete(name)
    assert_nothing_left(clients, name)


def test_without_the_role_setting_create_is_refused_before_the_spec_is_read(clients):
    bare = SageMakerEndpointAdmin(
        clients["sagemaker"], clients["application-autoscaling"], clients["cloudwatch"],
        bucket="sdcloud-blobs", role_arn=None, success_topic_arn=None, error_topic_arn=None,
    )  # fmt: skip
    with pytest.raises(Conflict, match="SDCLOUD_SAGEMAKER_ROLE_ARN"):
        EndpointService(bare).create({"name": "x"})
