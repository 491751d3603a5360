"""Adapters under contract test: the same tests run over every adapter of a port.

The AWS adapters run against one real ``moto_server`` process per session (moto's server extra);
each test gets fresh tables built from ``middleware/template.yaml`` and a fresh bucket.
"""

from __future__ import annotations

import uuid

import pytest

from middleware.adapters.fs_blobs import FolderBlobStore
from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_jobs import SqliteJobStore
from middleware.adapters.sqlite_users import SqliteUserStore
from tests.fakes.memory_ports import MemoryBlobStore, MemoryJobStore
from tests.support import moto_server as moto


@pytest.fixture(scope="session")
def moto_url():
    yield from moto.serve_or_skip("AWS adapters")


@pytest.fixture(scope="session")
def aws_clients(moto_url):
    import boto3
    from botocore.config import Config

    session = boto3.Session(**moto.CREDENTIALS)
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2})
    return {
        "dynamodb": session.client("dynamodb", endpoint_url=moto_url, config=config),
        "s3": session.client("s3", endpoint_url=moto_url, config=config),
    }


def make_table(client, logical_id: str) -> str:
    from tests.support.cfn_template import create_table_kwargs

    name = f"{logical_id}-{uuid.uuid4().hex[:12]}"
    client.create_table(**create_table_kwargs(logical_id, name))
    return name


def make_bucket(client) -> str:
    name = f"sdcloud-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["sqlite", "memory", "dynamodb"])
def job_store(request, tmp_path):
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "jobs.sqlite")
        yield SqliteJobStore(db)
        db.close()
    elif request.param == "dynamodb":
        from middleware.adapters.dynamodb_jobs import DynamoDbJobStore

        client = request.getfixturevalue("aws_clients")["dynamodb"]
        table = make_table(client, "JobsTable")
        yield DynamoDbJobStore(client, table, cursor_secret=b"c" * 32)
        client.delete_table(TableName=table)
    else:
        yield MemoryJobStore()


@pytest.fixture(params=["sqlite", "dynamodb"])
def user_store(request, tmp_path):
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "users.sqlite")
        yield SqliteUserStore(db)
        db.close()
    else:
        from middleware.adapters.dynamodb_users import DynamoDbUserStore

        client = request.getfixturevalue("aws_clients")["dynamodb"]
        users, keys = make_table(client, "UsersTable"), make_table(client, "ApiKeysTable")
        yield DynamoDbUserStore(client, users, keys)
        client.delete_table(TableName=users)
        client.delete_table(TableName=keys)


@pytest.fixture(params=["folder", "memory", "s3"])
def blob_store(request, tmp_path):
    if request.param == "folder":
        yield FolderBlobStore(tmp_path / "blobs", b"s" * 32)
    elif request.param == "s3":
        from middleware.adapters.s3_blobs import MIN_PART_BYTES, S3BlobStore

        client = request.getfixturevalue("aws_clients")["s3"]
        # The smallest legal parts, so the contract's large blob goes up in several of them.
        yield S3BlobStore(client, make_bucket(client), multipart_threshold=MIN_PART_BYTES, part_size=MIN_PART_BYTES)
    else:
        yield MemoryBlobStore(b"s" * 32)


# --- SageMaker endpoint administration (tests/contract/test_sagemaker_endpoints*.py) ----------


@pytest.fixture(scope="session")
def endpoint_clients(moto_url):
    import boto3

    session = boto3.Session(**moto.CREDENTIALS)
    return {
        name: session.client(name, endpoint_url=moto_url)
        for name in ("sagemaker", "application-autoscaling", "cloudwatch", "sns", "s3")
    }


@pytest.fixture
def endpoint_admin(endpoint_clients):
    """A SageMakerEndpointAdmin on moto, with real SNS topics and a fresh bucket."""
    from middleware.adapters.sagemaker_endpoints import SageMakerEndpointAdmin

    sns = endpoint_clients["sns"]
    return SageMakerEndpointAdmin(
        endpoint_clients["sagemaker"],
        endpoint_clients["application-autoscaling"],
        endpoint_clients["cloudwatch"],
        bucket=make_bucket(endpoint_clients["s3"]),
        role_arn="arn:aws:iam::123456789012:role/sdcloud-sagemaker",
        success_topic_arn=sns.create_topic(Name=f"ok-{uuid.uuid4().hex[:8]}")["TopicArn"],
        error_topic_arn=sns.create_topic(Name=f"err-{uuid.uuid4().hex[:8]}")["TopicArn"],
    )
