"""What the AWS adapters promise beyond the shared contracts, on a real moto_server: the stored
shape (hashes only, sparse index attributes, guard items), write-time transition guard, cursor
validation, multipart uploads and presigned URLs over HTTP, and the bootstrap wiring."""

from __future__ import annotations

import dataclasses
import urllib.request

import boto3
import pytest

from middleware.domain import job as jobs
from middleware.domain.errors import IllegalTransition
from middleware.domain.job import JobError, JobStatus
from tests.contract.conftest import make_bucket, make_table
from tests.contract.test_job_store_contract import make_job
from tests.support import moto_server as moto

MiB = 1024 * 1024


@pytest.fixture
def dynamo(aws_clients):
    return aws_clients["dynamodb"]


@pytest.fixture
def store(dynamo):
    from middleware.adapters.dynamodb_jobs import DynamoDbJobStore

    table = make_table(dynamo, "JobsTable")
    yield DynamoDbJobStore(dynamo, table, cursor_secret=b"k" * 32)
    dynamo.delete_table(TableName=table)


def raw(dynamo, table, item_id):
    return dynamo.get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")


def index_ids(dynamo, table, index, hash_name, value):
    out = dynamo.query(TableName=table, IndexName=index, KeyConditionExpression="#h = :v",
                       ExpressionAttributeNames={"#h": hash_name}, ExpressionAttributeValues={":v": {"S": value}})  # fmt: skip
    return [i["id"]["S"] for i in out["Items"]]


def test_index_attributes_are_sparse_and_follow_the_status(store, dynamo):
    job, _ = store.create(make_job())
    assert {"active_status", "created_sk"} <= raw(dynamo, store.table, job.id).keys()
    running = jobs.started(job, 5)
    assert store.update(job, running)
    asked = jobs.cancel_requested(running, 6)
    assert store.update(running, asked)
    item = raw(dynamo, store.table, job.id)
    assert item["running_flag"] == {"S": "1"} and item["cancel_flag"] == {"S": "1"}
    assert index_ids(dynamo, store.table, "running_by_heartbeat", "running_flag", "1") == [job.id]
    done = jobs.cancelled(asked, 7)
    assert store.update(asked, done)
    item = raw(dynamo, store.table, job.id)
    assert not {"active_status", "running_flag", "cancel_flag"} & item.keys()
    assert item["ended_status"] == {"S": "cancelled"}
    assert index_ids(dynamo, store.table, "running_by_heartbeat", "running_flag", "1") == []
    assert index_ids(dynamo, store.table, "cancels_by_time", "cancel_flag", "1") == []


def test_idempotency_guard_item_is_not_a_job_nor_in_any_listing(store, dynamo):
    from middleware.adapters.dynamodb_jobs import idempotency_item_id

    first, _ = store.create(make_job(key="retry-1"))
    guard_id = idempotency_item_id("ann", "retry-1")
    assert raw(dynamo, store.table, guard_id)["job_id"] == {"S": first.id}
    assert store.get(guard_id) is None and not store.touch(guard_id, 1)
    assert [j.id for j in store.list_by_owner("ann", 10)[0]] == [first.id]
    assert [j.id for j in store.list_by_status(JobStatus.QUEUED)] == [first.id]
    # A retry with another id returns the first job; the second job item was never written.
    again = make_job(key="retry-1")
    assert store.create(again) == (first, False)
    assert store.get(again.id) is None
    with pytest.raises(ValueError, match="must not start"):
        store.create(make_job(id=guard_id))


def test_transition_guard_holds_at_write_time_even_past_the_domain_check(store):
    job, _ = store.create(make_job())
    failed = jobs.failed(job, JobError("x", "y"), 2)
    assert store.update(job, failed)
    forged = dataclasses.replace(failed, status=JobStatus.RUNNING, version=failed.version + 1)
    # The write alone (what a caller skipping the check would reach) is refused by the condition,
    # and the item returned on the failed check tells it from a lost race.
    with pytest.raises(IllegalTransition):
        store._conditional_put(failed, forged)
    assert store.get(job.id) == failed
    stale = dataclasses.replace(failed, version=1)
    assert store._conditional_put(stale, dataclasses.replace(forged, version=2)) is False


def test_cursors_are_signed_and_bound_to_their_owner(store, dynamo):
    from middleware.adapters.dynamodb_jobs import DynamoDbJobStore

    for i in range(3):
        store.create(make_job(created_at=5_000_000 + i))
        store.create(make_job(owner="bob", created_at=5_000_000 + i))
    _, cursor = store.list_by_owner("ann", 1)
    assert cursor and len(cursor) < 512  # the API's cursor limit
    with pytest.raises(ValueError):
        store.list_by_owner("bob", 1, cursor)  # another owner's cursor
    with pytest.raises(ValueError):
        DynamoDbJobStore(dynamo, store.table, cursor_secret=b"x" * 32).list_by_owner("ann", 1, cursor)
    unsigned = DynamoDbJobStore(dynamo, store.table)
    _, plain = unsigned.list_by_owner("ann", 1)
    assert len(unsigned.list_by_owner("ann", 5, plain)[0]) == 2
    with pytest.raises(ValueError):
        store.list_by_owner("ann", 1, plain)  # unsigned cursor refused by a signing store


def test_an_oversized_record_is_refused_before_any_write(store):
    huge = make_job()
    bloated = dataclasses.replace(huge, summary={"prompt": "x" * 40_000})
    with pytest.raises(ValueError, match="exceeds"):
        store.create(bloated)
    assert store.get(huge.id) is None


def test_api_keys_are_stored_only_as_hashes(aws_clients):
    from middleware.adapters.dynamodb_users import DynamoDbUserStore

    dynamo = aws_clients["dynamodb"]
    users, keys = make_table(dynamo, "UsersTable"), make_table(dynamo, "ApiKeysTable")
    store = DynamoDbUserStore(dynamo, users, keys)
    store.create_user("ann", "artist")
    info, key = store.create_key("ann", "laptop")
    dumped = repr(dynamo.scan(TableName=keys)["Items"])
    assert key not in dumped and key.split("_", 2)[2] not in dumped and info.key_id in dumped


@pytest.fixture
def s3(aws_clients):
    from middleware.adapters.s3_blobs import MIN_PART_BYTES, S3BlobStore

    client = aws_clients["s3"]
    return S3BlobStore(client, make_bucket(client), multipart_threshold=MIN_PART_BYTES, part_size=MIN_PART_BYTES)


def test_large_blobs_go_up_in_parts_small_ones_in_one(s3, aws_clients):
    client = aws_clients["s3"]
    data = bytes(range(256)) * (11 * MiB // 256)
    s3.put_bytes("models/" + "b" * 64, data, "application/octet-stream")
    head = client.head_object(Bucket=s3.bucket, Key="models/" + "b" * 64)
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB
    assert s3.get_bytes("models/" + "b" * 64) == data
    s3.put_bytes("jobs/j/request.json", b"{}")
    assert "-" not in client.head_object(Bucket=s3.bucket, Key="jobs/j/request.json")["ETag"]
    assert client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_presigned_put_and_get_over_http(s3):
    # urllib would send a form Content-Type by default; a browser sends the file's.
    put = urllib.request.Request(s3.presigned_put_url("datasets/d1/a.png", 300), data=b"png!", method="PUT",
                                 headers={"Content-Type": "image/png"})  # fmt: skip
    with urllib.request.urlopen(put, timeout=10) as answer:  # noqa: S310 - loopback moto
        assert answer.status == 200
    with urllib.request.urlopen(s3.signed_url("datasets/d1/a.png", 300), timeout=10) as answer:  # noqa: S310
        assert answer.read() == b"png!"


def test_presigned_multipart_upload_round_trip(s3):
    data = b"m" * (5 * MiB) + b"tail"
    upload_id, urls = s3.start_multipart_upload("models/" + "c" * 64, len(data), 300)
    assert len(urls) == 2
    etags = []
    for url, chunk in zip(urls, (data[: 5 * MiB], data[5 * MiB :]), strict=True):
        request = urllib.request.Request(url, data=chunk, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback moto
            etags.append(answer.headers["ETag"])
    s3.complete_multipart_upload("models/" + "c" * 64, upload_id, etags)
    assert s3.get_bytes("models/" + "c" * 64) == data


def test_bootstrap_builds_the_aws_storage_from_settings(moto_url, aws_clients):
    from middleware.bootstrap import build_aws_storage
    from middleware.settings import Settings

    dynamo, s3 = aws_clients["dynamodb"], aws_clients["s3"]
    settings = Settings(
        mode="aws", aws_region=moto.REGION, aws_endpoint_url=moto_url,
        jobs_table=make_table(dynamo, "JobsTable"), users_table=make_table(dynamo, "UsersTable"),
        api_keys_table=make_table(dynamo, "ApiKeysTable"), blob_bucket=make_bucket(s3),
        cursor_secret="z" * 32,
    )  # fmt: skip
    storage = build_aws_storage(settings, boto3.Session(**moto.CREDENTIALS))
    storage.users.create_user("ann", "admin")
    _, key = storage.users.create_key("ann")
    assert storage.users.authenticate(key).name == "ann"
    job, created = storage.jobs.create(make_job())
    assert created and storage.jobs.get(job.id) == job
    storage.blobs.put_bytes(jobs.request_key(job.id), b"{}")
    assert storage.blobs.exists(jobs.request_key(job.id))
    assert "X-Amz-Signature=" in storage.blobs.signed_url(jobs.request_key(job.id), 60)
