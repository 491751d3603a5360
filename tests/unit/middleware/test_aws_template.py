"""template.yaml's storage is what the AWS adapters use, and is deployed safely (no moto here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from middleware.adapters import dynamodb_jobs, dynamodb_users
from tests.support.cfn_template import (
    TEMPLATE,
    create_table_kwargs,
    load_template,
    resources,
    table_properties,
)


def key_names(schema: list[dict]) -> tuple[str, ...]:
    return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))


def test_it_is_a_sam_template_holding_only_storage_for_now():
    template = load_template()
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert {r["Type"] for r in template["Resources"].values()} == {
        "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::S3::BucketPolicy"}  # fmt: skip
    assert "later slice" in TEMPLATE.read_text().split("AWSTemplateFormatVersion")[0]


def test_jobs_table_keys_and_indexes_are_the_adapters():
    props = table_properties("JobsTable")
    assert key_names(props["KeySchema"]) == (dynamodb_jobs.HASH_KEY,)
    indexes = {i["IndexName"]: key_names(i["KeySchema"]) for i in props["GlobalSecondaryIndexes"]}
    assert indexes == dynamodb_jobs.INDEXES
    projections = {i["IndexName"]: i["Projection"]["ProjectionType"] for i in props["GlobalSecondaryIndexes"]}
    # list_by_status fetches the records of the keys-only index; the others are read as they are.
    assert projections.pop(dynamodb_jobs.INDEX_ENDED_BY_STATUS) == "KEYS_ONLY"
    assert set(projections.values()) == {"ALL"}
    # Every key attribute is declared with the type the adapter writes (numbers for times).
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    running, ended = _a_running_job_with_cancel_and_its_end()
    item = {**dynamodb_jobs.job_to_item(ended), **dynamodb_jobs.job_to_item(running)}
    for name, kind in types.items():
        assert next(iter(item[name])) == kind, name


def _a_running_job_with_cancel_and_its_end():
    from middleware.domain import job as jobs

    job = jobs.new_job(id="j1", owner="ann", task="txt2img", payload={"prompt": "cat"}, checkpoint="m",
                       checkpoint_sha256="0" * 64, endpoint="e", now_us=1)  # fmt: skip
    running = jobs.cancel_requested(jobs.started(job, 2), 3)
    return running, jobs.cancelled(running, 4)


def test_user_and_key_tables_are_the_adapters():
    assert key_names(table_properties("UsersTable")["KeySchema"]) == (dynamodb_users.USERS_HASH_KEY,)
    assert key_names(table_properties("ApiKeysTable")["KeySchema"]) == (dynamodb_users.KEYS_HASH_KEY,)


@pytest.mark.parametrize("logical_id", ["JobsTable", "UsersTable", "ApiKeysTable"])
def test_tables_are_on_demand_recoverable_encrypted_and_retained(logical_id):
    table = resources("AWS::DynamoDB::Table")[logical_id]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert create_table_kwargs(logical_id, "t")["KeySchema"] == props["KeySchema"]


def test_bucket_is_private_encrypted_tls_only_and_expires_job_outputs():
    bucket = resources("AWS::S3::Bucket")["BlobBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert any("ETag" in rule["ExposedHeaders"] for rule in props["CorsConfiguration"]["CorsRules"])
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-job-outputs"]["Prefix"] == "jobs/"
    assert rules["expire-job-outputs"]["ExpirationInDays"] == {"Ref": "JobOutputRetentionDays"}
    assert "JobOutputRetentionDays" in load_template()["Parameters"]
    assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart-uploads"]
    (statement,) = resources("AWS::S3::BucketPolicy")["BlobBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cfn_lint_is_clean():
    exe = Path(sys.executable).parent / "cfn-lint"
    if not exe.exists() and shutil.which("cfn-lint") is None:
        pytest.skip("cfn-lint is not installed (it comes with moto[server] in requirements/dev.txt)")
    command = [str(exe) if exe.exists() else "cfn-lint", str(TEMPLATE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
