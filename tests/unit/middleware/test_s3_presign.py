"""What moto does not check about S3: presigned URLs' SigV4 signatures and expiry, and how a
large object is cut into parts. Presigning is local computation: no server, no network."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import boto3
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from middleware.adapters.s3_blobs import MAX_PRESIGN_S, MIN_PART_BYTES, S3BlobStore, plan_parts

REGION = "eu-west-1"
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
MiB = 1024 * 1024


def make_store(**kw) -> S3BlobStore:
    session = boto3.Session(
        aws_access_key_id=CREDS.access_key, aws_secret_access_key=CREDS.secret_key, region_name=REGION
    )
    client = session.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
    return S3BlobStore(client, "sdcloud-blobs", **kw)


def verify_presigned(url: str, method: str, now: dt.datetime, creds: Credentials = CREDS) -> bool:
    """S3's check, redone with botocore's own SigV4 query signer: recompute the signature of
    (method, path, query without the signature, signed headers) and compare; then the expiry."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query)
    if given.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or given.get("X-Amz-SignedHeaders") != "host":
        return False
    unsigned = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "X-Amz-Signature"],
                                                         quote_via=quote)))  # fmt: skip
    scope = given["X-Amz-Credential"].split("/")
    request = AWSRequest(method=method, url=unsigned, headers={"host": parts.netloc})
    request.context["timestamp"] = given["X-Amz-Date"]
    signer = S3SigV4QueryAuth(creds, "s3", scope[2], expires=int(given["X-Amz-Expires"]))
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != given.get("X-Amz-Signature"):
        return False
    signed_at = dt.datetime.strptime(given["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    return now < signed_at + dt.timedelta(seconds=int(given["X-Amz-Expires"]))


def signed_at(url: str) -> dt.datetime:
    stamp = dict(parse_qsl(urlsplit(url).query))["X-Amz-Date"]
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def test_get_url_is_sigv4_with_expiry_and_signed_host():
    url = make_store().signed_url("jobs/abc/images/0.png", 900)
    query = dict(parse_qsl(urlsplit(url).query))
    assert urlsplit(url).netloc == f"sdcloud-blobs.s3.{REGION}.amazonaws.com"
    assert urlsplit(url).path == "/jobs/abc/images/0.png"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-SignedHeaders"] == "host"
    assert len(query["X-Amz-Signature"]) == 64
    assert query["X-Amz-Credential"].startswith(f"{CREDS.access_key}/") and REGION in query["X-Amz-Credential"]
    assert CREDS.secret_key not in url


def test_signature_covers_key_method_and_expiry():
    store = make_store()
    url = store.signed_url("jobs/abc/images/0.png", 900)
    at = signed_at(url) + dt.timedelta(seconds=1)
    assert verify_presigned(url, "GET", at)
    assert not verify_presigned(with_path(url, "/jobs/abc/images/1.png"), "GET", at)  # another key
    assert not verify_presigned(url, "PUT", at)  # another method
    assert not verify_presigned(url.replace("X-Amz-Expires=900", "X-Amz-Expires=9000"), "GET", at)
    other = Credentials("AKIDEXAMPLE", "another-secret")
    assert not verify_presigned(url, "GET", at, creds=other)


def test_url_expires():
    url = make_store().signed_url("jobs/abc/result.json", 60)
    start = signed_at(url)
    assert verify_presigned(url, "GET", start + dt.timedelta(seconds=59))
    assert not verify_presigned(url, "GET", start + dt.timedelta(seconds=60))
    assert not verify_presigned(url, "GET", start + dt.timedelta(days=1))


def test_put_url_is_for_put_only_and_may_pin_the_content_type():
    store = make_store()
    url = store.presigned_put_url("models/" + "a" * 64, 300)
    at = signed_at(url) + dt.timedelta(seconds=1)
    assert verify_presigned(url, "PUT", at) and not verify_presigned(url, "GET", at)
    typed = store.presigned_put_url("datasets/d1/x.png", 300, content_type="image/png")
    assert "content-type" in dict(parse_qsl(urlsplit(typed).query))["X-Amz-SignedHeaders"]


def test_multipart_part_urls_sign_upload_id_and_part_number():
    # Presigned exactly as start_multipart_upload does (its create call needs a server: see
    # tests/contract/test_aws_storage.py for the whole presigned multipart round trip on moto).
    client = make_store()._s3
    url = client.generate_presigned_url(
        "upload_part", Params={"Bucket": "sdcloud-blobs", "Key": "models/x", "UploadId": "u1", "PartNumber": 2},
        ExpiresIn=600,
    )  # fmt: skip
    at = signed_at(url) + dt.timedelta(seconds=1)
    assert verify_presigned(url, "PUT", at)
    assert not verify_presigned(url.replace("partNumber=2", "partNumber=3"), "PUT", at)
    assert not verify_presigned(url.replace("uploadId=u1", "uploadId=u2"), "PUT", at)


@pytest.mark.parametrize("expires", [0, -1, MAX_PRESIGN_S + 1])
def test_expiry_bounds(expires):
    with pytest.raises(ValueError, match="presigned URL lives"):
        make_store().signed_url("jobs/a/result.json", expires)


def test_keys_are_validated_before_signing():
    store = make_store()
    for key in ("../x", "/abs", "jobs//x", ""):
        with pytest.raises(ValueError):
            store.signed_url(key, 60)
        with pytest.raises(ValueError):
            store.presigned_put_url(key, 60)


@pytest.mark.parametrize("config", [Config(signature_version="s3"), None])
def test_a_client_not_set_to_sigv4_is_refused(config):
    # botocore's default S3 client presigns SigV2 URLs (AWSAccessKeyId=...&Signature=...).
    client = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name=REGION).client(
        "s3", config=config
    )
    assert "X-Amz-Algorithm" not in client.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    with pytest.raises(ValueError, match="SigV4"):
        S3BlobStore(client, "sdcloud-blobs")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, [(1, 0, 0)]),
        (1, [(1, 0, 1)]),
        (5 * MiB, [(1, 0, 5 * MiB)]),
        (5 * MiB + 1, [(1, 0, 5 * MiB), (2, 5 * MiB, 1)]),
        (11 * MiB, [(1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 1 * MiB)]),
    ],
)
def test_parts_cover_the_object_exactly_once(size, expected):
    parts = plan_parts(size, 5 * MiB)
    assert [(p.number, p.offset, p.length) for p in parts] == expected
    assert sum(p.length for p in parts) == size


def test_part_and_threshold_bounds():
    with pytest.raises(ValueError, match="at least"):
        plan_parts(10, MIN_PART_BYTES - 1)
    with pytest.raises(ValueError, match="more than 10000 parts"):
        plan_parts(10_001 * MIN_PART_BYTES, MIN_PART_BYTES)
    with pytest.raises(ValueError, match="threshold"):
        make_store(multipart_threshold=MIN_PART_BYTES, part_size=2 * MIN_PART_BYTES)
