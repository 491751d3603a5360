"""S3 plumbing shared by the model fetcher and the output store: URIs, the client, error wording.

Credentials come from boto3's default chain: on SageMaker that is the endpoint's execution role
(instance metadata), locally ``AWS_*`` variables or a profile. Nothing here ever formats a
credential, a signed URL or a raw service message into an error: only the bucket, the key and
the error code, which is what a person needs to fix a policy or a reference.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import unquote, urlparse

# S3 bucket names: 3-63 of lowercase letters, digits, '.' and '-' (checked loosely: S3 has the last word).
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
                           "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "412"})


class S3UriError(ValueError):
    """An ``s3://`` URI that does not name a bucket and key (the message says what to fix)."""


def parse_s3_uri(uri: str, *, need_key: bool = True) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")`` (percent-escapes in the key decoded)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        raise S3UriError(f"not an s3:// URI: {uri}")
    bucket = parsed.netloc
    if not bucket or not (3 <= len(bucket) <= 63) or not set(bucket) <= _BUCKET_CHARS:
        raise S3UriError(f"s3:// URI must name a bucket (3-63 lowercase letters, digits, '.', '-'): {uri}")
    if parsed.query or parsed.fragment:
        raise S3UriError(f"s3:// URI must not carry a query or fragment: s3://{bucket}/...")
    key = unquote(parsed.path[1:]) if parsed.path.startswith("/") else unquote(parsed.path)
    if need_key and (not key or key.endswith("/")):
        raise S3UriError(f"s3:// URI must name an object, not a bucket or folder: {uri}")
    return bucket, key


def make_client(endpoint_url: str | None = None, *, connect_timeout_s: float = 10.0,
                read_timeout_s: float = 60.0) -> Any:
    """A boto3 S3 client on the default credential chain.

    ``endpoint_url`` (SDCLOUD_S3_ENDPOINT_URL) points it at a stand-in such as moto; boto3 also
    reads ``AWS_ENDPOINT_URL_S3`` on its own. With an override, path-style addressing, since a
    stand-in on 127.0.0.1 has no per-bucket host names.
    """
    import boto3
    from botocore.config import Config

    s3_options = {"addressing_style": "path"} if endpoint_url else {}
    config = Config(connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
                    retries={"max_attempts": 5, "mode": "standard"}, s3=s3_options,
                    signature_version="s3v4")
    # SageMaker sets AWS_REGION; botocore's own chain reads AWS_DEFAULT_REGION.
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
    return boto3.session.Session(region_name=region).client("s3", endpoint_url=endpoint_url or None, config=config)


class LazyClient:
    """A client made on first use: local mode never pays boto3's import (a few hundred ms of
    cold start) unless a job actually names an ``s3://`` model or the output store is S3."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return getattr(client, name)


def error_code(error: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError (``NoSuchKey``, ``403``...), else None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    if code:
        return str(code)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(status) if status else None


def is_missing(error: BaseException) -> bool:
    return error_code(error) in _MISSING_CODES


def describe_error(error: BaseException, bucket: str, key: str, *, action: str, permission: str) -> str:
    """One sentence a person can act on, for a failed S3 call on ``s3://bucket/key``.

    ``action`` is what was tried ("reading", "writing"); ``permission`` the IAM action it needs.
    """
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"s3://{bucket}/{key}"
    if isinstance(error, NoCredentialsError):
        return (f"{action} {where} failed: no AWS credentials were found (the container uses its "
                "instance role, or AWS_* variables when run by hand)")
    if isinstance(error, EndpointConnectionError):
        return f"{action} {where} failed: S3 could not be reached (network, VPC endpoint or endpoint URL)"
    if isinstance(error, ClientError):
        code = error_code(error) or "unknown"
        if code in _MISSING_CODES:
            return f"{where} does not exist"
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist ({where})"
        if code in _DENIED_CODES:
            return (f"access to {where} was denied ({code}): the container's role needs {permission} on "
                    "it (S3 also answers 403 for a missing key when the role may not list the bucket)")
        if code in _CHANGED_CODES:
            return f"{where} changed while it was being read"
        return f"{action} {where} failed (S3 error {code})"
    return f"{action} {where} failed ({type(error).__name__})"
