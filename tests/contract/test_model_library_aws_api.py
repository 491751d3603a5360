"""AWS mode's model library end to end through the app ``build_aws`` wires: DynamoDB and S3 on
a real moto_server, parts PUT to S3's presigned ``upload_part`` URLs, job references s3://."""

from __future__ import annotations

import boto3
import requests
from fastapi.testclient import TestClient

from middleware.adapters.s3_blobs import MIN_PART_BYTES
from tests.contract.conftest import make_bucket, make_table
from tests.contract.model_files import safetensors_bytes, sha256
from tests.contract.test_sagemaker_compute import create_endpoint
from tests.support import moto_server as moto


def test_upload_through_the_aws_app(moto_url, aws_clients):
    from middleware.bootstrap import build_aws
    from middleware.settings import Settings

    session = boto3.Session(**moto.CREDENTIALS)
    dynamo, s3 = aws_clients["dynamodb"], aws_clients["s3"]
    bucket = make_bucket(s3)
    settings = Settings(
        mode="aws", aws_region=moto.REGION, aws_endpoint_url=moto_url,
        jobs_table=make_table(dynamo, "JobsTable"), users_table=make_table(dynamo, "UsersTable"),
        api_keys_table=make_table(dynamo, "ApiKeysTable"), models_table=make_table(dynamo, "ModelsTable"),
        blob_bucket=bucket,
        sagemaker_endpoints=f"default=async:{create_endpoint(session.client('sagemaker', endpoint_url=moto_url), bucket)}",
    )  # fmt: skip
    runtime = build_aws(settings, session, provision=False)
    runtime.services.library.part_bytes = MIN_PART_BYTES  # S3's floor; tests only
    runtime.storage.users.create_user("ann", "artist")
    _, key = runtime.storage.users.create_key("ann")
    auth = {"Authorization": f"Bearer {key}"}
    n = MIN_PART_BYTES + 1000
    data = safetensors_bytes({"w": ("U8", [n], bytes(i % 7 for i in range(n)))})
    client = TestClient(runtime.app)
    plan = client.post(
        "/v1/models/uploads",
        json={"name": "ink.safetensors", "type": "lora", "size": len(data), "sha256": sha256(data)},
        headers=auth,
    )
    assert plan.status_code == 201, plan.text
    plan = plan.json()
    assert [p["size"] for p in plan["parts"]] == [MIN_PART_BYTES, len(data) - MIN_PART_BYTES]
    etags = []
    for part in plan["parts"]:
        assert "X-Amz-Signature" in part["url"]
        start = (part["number"] - 1) * plan["part_size"]
        answer = requests.put(part["url"], data=data[start : start + part["size"]], timeout=30)
        assert answer.status_code == 200
        etags.append({"number": part["number"], "etag": answer.headers["ETag"]})
    done = client.post(f"/v1/models/uploads/{plan['upload_id']}/complete", json={"parts": etags}, headers=auth)
    assert done.status_code == 200, done.text
    assert s3.get_object(Bucket=bucket, Key=f"models/{sha256(data)}")["Body"].read() == data
    listed = client.get("/v1/models?type=lora", headers=auth).json()["items"]
    assert [m["name"] for m in listed] == ["ink.safetensors"]
    info = runtime.services.inferences._catalog.for_user("ann").get("ink.safetensors", "lora")  # noqa: SLF001
    assert info.uri == f"s3://{bucket}/models/{sha256(data)}"
