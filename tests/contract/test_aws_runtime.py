"""``build_aws`` on a real moto_server: DynamoDB tables from the template's own definitions, S3,
Secrets Manager and SageMaker. A key holder submits through the FastAPI app exactly as through
API Gateway; the job lands in DynamoDB, its request in S3, and InvokeEndpointAsync is called."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from fastapi.testclient import TestClient

from middleware.adapters.bucket_models import INDEX_KEY
from middleware.adapters.dynamodb_users import DynamoDbUserStore
from middleware.domain import job as jobs
from middleware.domain.job import invocation_key
from middleware.services.progress_relay import progress_key
from tests.contract.conftest import make_bucket, make_table
from tests.contract.test_sagemaker_compute import create_endpoint
from tests.support import moto_server as moto

SHA = "ab" * 32


@pytest.fixture
def aws(moto_url, aws_clients):
    from middleware.settings import Settings

    session = boto3.Session(**moto.CREDENTIALS)
    dynamo, s3 = aws_clients["dynamodb"], aws_clients["s3"]
    secrets = session.client("secretsmanager", endpoint_url=moto_url)
    sagemaker = session.client("sagemaker", endpoint_url=moto_url)
    bucket = make_bucket(s3)
    secret = secrets.create_secret(Name=f"sdcloud-admin-{uuid.uuid4().hex[:8]}")["ARN"]
    endpoint = create_endpoint(sagemaker, bucket)
    settings = Settings(
        mode="aws", aws_region=moto.REGION, aws_endpoint_url=moto_url,
        jobs_table=make_table(dynamo, "JobsTable"), users_table=make_table(dynamo, "UsersTable"),
        api_keys_table=make_table(dynamo, "ApiKeysTable"), models_table=make_table(dynamo, "ModelsTable"),
        blob_bucket=bucket,
        sagemaker_endpoints=f"default=async:{endpoint}", admin_key_secret_arn=secret,
        invocation_timeout_s=1200, request_ttl_s=3600,
    )  # fmt: skip
    return {
        "settings": settings, "session": session, "secrets": secrets, "secret": secret,
        "dynamo": dynamo, "s3": s3, "bucket": bucket, "endpoint": endpoint,
    }  # fmt: skip


def put_catalog(s3, bucket: str) -> None:
    index = {"models": [{"name": "tiny-sd15.safetensors", "type": "checkpoint", "sha256": SHA, "size": 1234}]}
    s3.put_object(Bucket=bucket, Key=INDEX_KEY, Body=json.dumps(index).encode())


def test_the_first_start_creates_the_admin_and_stores_its_key_in_the_secret(aws):
    from middleware.bootstrap import build_aws

    first = build_aws(aws["settings"], aws["session"])
    assert first.admin_created
    key = aws["secrets"].get_secret_value(SecretId=aws["secret"])["SecretString"]
    assert first.storage.users.authenticate(key).name == "admin"

    second = build_aws(aws["settings"], aws["session"])  # another cold start: users exist
    assert not second.admin_created
    versions = aws["secrets"].list_secret_version_ids(SecretId=aws["secret"])["Versions"]
    assert len(versions) == 1


def test_a_start_that_loses_the_admin_race_writes_no_secret(aws):
    from middleware.adapters.aws_clients import AwsClients
    from middleware.bootstrap import provision_aws_admin

    settings = aws["settings"]

    class SawAnEmptyTable(DynamoDbUserStore):
        """A cold start that counted users just before another one created the admin."""

        def count_users(self) -> int:
            return 0

    users = SawAnEmptyTable(aws["dynamo"], settings.users_table, settings.api_keys_table)
    users.create_user("admin", "admin")  # the winner's conditional create
    assert provision_aws_admin(settings, AwsClients(settings, aws["session"]), users) is False
    assert aws["secrets"].list_secret_version_ids(SecretId=aws["secret"])["Versions"] == []


def test_no_secret_configured_creates_no_admin(aws):
    from middleware.bootstrap import build_aws

    settings = aws["settings"].model_copy(update={"admin_key_secret_arn": None})
    runtime = build_aws(settings, aws["session"])
    assert not runtime.admin_created
    assert runtime.storage.users.count_users() == 0


def test_submit_through_the_app_reaches_dynamodb_s3_and_sagemaker(aws):
    from middleware.bootstrap import build_aws

    runtime = build_aws(aws["settings"], aws["session"], provision=False)
    assert runtime.services.mode == "aws"
    assert runtime.compute._runtime.meta.config.retries["mode"] == "standard"  # noqa: SLF001 - wiring
    runtime.storage.users.create_user("ann", "artist")
    _, key = runtime.storage.users.create_key("ann")
    put_catalog(aws["s3"], aws["bucket"])
    client = TestClient(runtime.app)
    auth = {"Authorization": f"Bearer {key}"}

    models = client.get("/v1/models", headers=auth)
    assert models.status_code == 200, models.text
    assert "tiny-sd15.safetensors" in models.text

    created = client.post(
        "/v1/inferences",
        headers=auth,
        json={"task": "txt2img", "checkpoint": "tiny-sd15.safetensors", "payload": {"prompt": "a lighthouse", "steps": 4}},
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]

    item = aws["dynamo"].get_item(
        TableName=aws["settings"].jobs_table, Key={"id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    assert item["status"]["S"] == "queued"
    request = json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=jobs.request_key(job_id))["Body"].read())
    assert request["models"]["checkpoint"]["uri"] == f"s3://{aws['bucket']}/models/{SHA}"
    assert request["output"]["prefix"] == f"jobs/{job_id}/"
    invoked = json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=invocation_key(job_id))["Body"].read())
    assert invoked["endpoint"] == aws["endpoint"] and invoked["inference_id"] == job_id

    # The container publishes progress into the bucket; a read of the job relays it.
    document = {"job_id": job_id, "phase": "sampling", "step": 2, "steps": 4, "fraction": 0.5, "preview_step": 0}
    aws["s3"].put_object(Bucket=aws["bucket"], Key=progress_key(job_id), Body=json.dumps(document).encode())
    seen = client.get(f"/v1/inferences/{job_id}", headers=auth).json()
    assert seen["status"] == "running" and seen["progress"]["step"] == 2

    states = runtime.services.catalog.endpoint_states()  # SageMaker's own view of the configured ones
    assert [(e.name, e.kind, e.status) for e in states] == [("default", "async", "InService")]

    cancelling = client.delete(f"/v1/inferences/{job_id}", headers=auth)
    assert cancelling.status_code == 200, cancelling.text
    marker = aws["s3"].get_object(Bucket=aws["bucket"], Key=jobs.cancel_marker_key(job_id))
    assert json.loads(marker["Body"].read()) == {"action": "interrupt"}


@pytest.fixture
def lambda_environment(aws, monkeypatch):
    """The environment a Lambda function of the stack sees (template.yaml's variables), on moto."""
    import middleware.bootstrap as bootstrap

    settings = aws["settings"]
    variables = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": moto.REGION,
        "SDCLOUD_MODE": "aws", "SDCLOUD_AWS_REGION": moto.REGION, "SDCLOUD_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "SDCLOUD_JOBS_TABLE": settings.jobs_table, "SDCLOUD_USERS_TABLE": settings.users_table,
        "SDCLOUD_API_KEYS_TABLE": settings.api_keys_table, "SDCLOUD_BLOB_BUCKET": settings.blob_bucket,
        "SDCLOUD_SAGEMAKER_ENDPOINTS": settings.sagemaker_endpoints,
        "SDCLOUD_ADMIN_KEY_SECRET_ARN": settings.admin_key_secret_arn,
    }  # fmt: skip
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(bootstrap, "_AWS_RUNTIME", None)
    yield bootstrap
    bootstrap._AWS_RUNTIME = None  # noqa: SLF001 - the next test builds its own


def test_aws_runtime_is_built_once_per_process_from_the_environment(lambda_environment, aws):
    runtime = lambda_environment.aws_runtime()
    assert lambda_environment.aws_runtime() is runtime
    assert runtime.admin_created
    assert runtime.services.events is not None and runtime.sweeper.sweep_once() == []
    key = aws["secrets"].get_secret_value(SecretId=aws["secret"])["SecretString"]
    assert runtime.services.auth.authenticate(key).name == "admin"


def test_aws_runtime_reports_a_bad_setting_in_one_line(lambda_environment, monkeypatch):
    monkeypatch.setenv("SDCLOUD_REQUEST_TTL_S", "5")
    with pytest.raises(RuntimeError, match="SD Cloud cannot start: SDCLOUD_REQUEST_TTL_S: Input should be greater"):
        lambda_environment.aws_runtime()
