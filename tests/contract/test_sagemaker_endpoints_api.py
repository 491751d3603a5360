"""The endpoint routes over the SageMaker adapter on moto: what an admin does from the API, and
the same refusals for artists as in local mode."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from fastapi.testclient import TestClient

from middleware.api.app import create_app
from middleware.bootstrap import build_local, provision_admin
from middleware.ports_endpoints import EndpointsNotManaged
from middleware.services.endpoints import EndpointService
from tests.api.conftest import make_settings

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdcloud-engine:1.0"


@pytest.fixture
def api(tmp_path, endpoint_admin):
    # Local stores for users and keys; the endpoints are SageMaker's (moto). No container runs:
    # nothing here submits a job.
    runtime = build_local(make_settings(tmp_path, "http://127.0.0.1:9"))
    admin_key = provision_admin(runtime).read_text().strip()
    runtime.users.create_user("ann", "artist")
    _info, artist_key = runtime.users.create_key("ann")
    services = dataclasses.replace(runtime.services, endpoints=EndpointService(endpoint_admin, default_image=IMAGE))
    try:
        with TestClient(create_app(services)) as client:
            yield client, {"Authorization": f"Bearer {admin_key}"}, {"Authorization": f"Bearer {artist_key}"}
    finally:
        runtime.stop()


def test_admin_creates_describes_scales_stops_and_deletes(api, endpoint_clients):
    client, admin, artist = api
    name = f"sd-api-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "instance_type": "ml.g4dn.xlarge", "kind": "async", "min_instances": 0, "max_instances": 2}
    created = client.post("/v1/endpoints", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/endpoints/{name}"
    view = created.json()
    assert (view["name"], view["kind"], view["status"], view["image"]) == (name, "async", "InService", IMAGE)
    assert (view["min_instances"], view["max_instances"], view["scaling"]) == (0, 2, "applied")

    # A retry of the same create is answered with the endpoint, not a second one.
    retry = client.post("/v1/endpoints", json=body, headers=admin)
    assert retry.status_code == 200 and retry.json()["name"] == name
    other = client.post("/v1/endpoints", json={**body, "instance_type": "ml.g4dn.2xlarge"}, headers=admin)
    assert other.status_code == 409 and other.json()["code"] == "endpoint_exists"

    # Artists see it but cannot change it.
    assert name in [e["name"] for e in client.get("/v1/endpoints", headers=artist).json()["items"]]
    assert client.get(f"/v1/endpoints/{name}", headers=artist).json()["current_instances"] == 1
    assert client.post(f"/v1/endpoints/{name}/stop", headers=artist).status_code == 403

    scaled = client.post(f"/v1/endpoints/{name}/scale", json={"min_instances": 1, "max_instances": 4}, headers=admin)
    assert scaled.status_code == 200 and (scaled.json()["min_instances"], scaled.json()["max_instances"]) == (1, 4)
    stopped = client.post(f"/v1/endpoints/{name}/stop", headers=admin)
    assert stopped.status_code == 200 and (stopped.json()["min_instances"], stopped.json()["max_instances"]) == (0, 0)

    deleted = client.delete(f"/v1/endpoints/{name}", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/v1/endpoints/{name}", headers=admin).status_code == 404
    assert client.delete(f"/v1/endpoints/{name}", headers=admin).status_code == 404
    sm = endpoint_clients["sagemaker"]
    assert [m for m in sm.list_models()["Models"] if m["ModelName"] == name] == []


def test_rules_of_the_kind_are_checked_before_sagemaker_is_asked(api, endpoint_clients):
    client, admin, _artist = api
    name = f"sd-rt-{uuid.uuid4().hex[:8]}"
    refused = client.post(
        "/v1/endpoints",
        json={"name": name, "instance_type": "ml.g4dn.xlarge", "kind": "realtime", "min_instances": 0},
        headers=admin,
    )
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert error["field"] == "min_instances" and "cannot scale to zero" in error["message"]
    assert [c for c in endpoint_clients["sagemaker"].list_endpoint_configs()["EndpointConfigs"]
            if c["EndpointConfigName"] == name] == []

    created = client.post(
        "/v1/endpoints", json={"name": name, "instance_type": "ml.g4dn.xlarge", "kind": "realtime"}, headers=admin
    )
    assert created.status_code == 201 and created.json()["min_instances"] == 1
    to_zero = client.post(f"/v1/endpoints/{name}/scale", json={"min_instances": 0, "max_instances": 1}, headers=admin)
    assert to_zero.status_code == 400 and to_zero.json()["errors"][0]["field"] == "min_instances"
    stopped = client.post(f"/v1/endpoints/{name}/stop", headers=admin).json()
    assert stopped["status"] == "Stopped"
    assert client.delete(f"/v1/endpoints/{name}", headers=admin).status_code == 204


def test_the_lambda_handler_applies_scaling_through_build_aws(moto_url, aws_clients, endpoint_clients):
    """AWS mode as the EventBridge rule's Lambda runs it: build_aws wires the SageMaker admin,
    and an InService event registers scale-to-zero."""
    import json
    from pathlib import Path

    import boto3

    from middleware.adapters.sagemaker_endpoints import resource_id
    from middleware.bootstrap import build_aws
    from middleware.services.endpoints import endpoint_state_handler
    from middleware.settings import Settings
    from tests.contract.conftest import make_bucket, make_table
    from tests.support import moto_server as moto

    dynamo, sns = aws_clients["dynamodb"], endpoint_clients["sns"]
    settings = Settings(
        mode="aws", aws_region=moto.REGION, aws_endpoint_url=moto_url, blob_bucket=make_bucket(aws_clients["s3"]),
        jobs_table=make_table(dynamo, "JobsTable"), users_table=make_table(dynamo, "UsersTable"),
        api_keys_table=make_table(dynamo, "ApiKeysTable"), sagemaker_endpoints="default=async:configured-one",
        sagemaker_role_arn="arn:aws:iam::123456789012:role/sdcloud-sagemaker",
        success_topic_arn=sns.create_topic(Name="lambda-ok")["TopicArn"],
        error_topic_arn=sns.create_topic(Name="lambda-err")["TopicArn"], sagemaker_image_uri=IMAGE,
    )  # fmt: skip
    runtime = build_aws(settings, boto3.Session(**moto.CREDENTIALS), provision=False)
    service = runtime.services.endpoints
    assert service is not None
    name = f"sd-lambda-{uuid.uuid4().hex[:8]}"
    described, created = service.create({"name": name, "instance_type": "ml.g4dn.xlarge", "max_instances": 3})
    assert created and described.image == IMAGE
    env = endpoint_clients["sagemaker"].describe_model(ModelName=name)["PrimaryContainer"]["Environment"]
    assert env["SDCLOUD_OUTPUT_STORE"] == f"s3://{settings.blob_bucket}"

    aas = endpoint_clients["application-autoscaling"]
    dimension = "sagemaker:variant:DesiredInstanceCount"
    for policy in aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource_id(name))[
        "ScalingPolicies"
    ]:
        aas.delete_scaling_policy(PolicyName=policy["PolicyName"], ServiceNamespace="sagemaker",
                                  ResourceId=resource_id(name), ScalableDimension=dimension)  # fmt: skip
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id(name), ScalableDimension=dimension)

    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "eventbridge_endpoint_inservice.json").read_text())
    event["detail"]["EndpointName"] = name
    answer = endpoint_state_handler(lambda: runtime)(event, None)
    assert answer == {"handled": True, "endpoint": name, "status": "InService"}
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource_id(name)])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 3)
    assert len(aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource_id(name))["ScalingPolicies"]) == 2

    # The endpoint named in settings is listed beside it, and described, but never changed here.
    listed = {e.name: e for e in service.list()}
    assert set(listed) >= {name, "default"} and listed["default"].kind == "async"
    assert service.describe("default").name == "default"
    with pytest.raises(EndpointsNotManaged, match="SDCLOUD_SAGEMAKER_ENDPOINTS"):
        service.stop("default")
    service.delete(name)
