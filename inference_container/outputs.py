"""The output store: where a job's PNGs and result document go when it names ``output.prefix``,
and where the job-scoped cancel/skip markers are read from (SageMaker async has no cancel call).

``file:///abs/folder`` is a folder shared with the middleware's blob store in local mode;
``s3://bucket[/base-prefix]`` is the bucket SageMaker async reads and writes in AWS mode (the
middleware's blob bucket). The port is shaped for an object store: ``put`` replaces a whole object at once (a reader never sees half of it), ``get``
answers None for a missing key (S3 ``NoSuchKey``) and ``exists`` is one HEAD request.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from inference_container.errors import EngineError
from inference_container.s3 import S3UriError, describe_error, is_missing, make_client, parse_s3_uri
from inference_container.settings import SettingsError


class OutputStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` atomically, replacing what was there."""
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there is no such key."""
        ...

    def exists(self, key: str) -> bool: ...


class FolderOutputStore:
    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        target = (self._root / key).resolve()
        if self._root not in target.parents:
            raise ValueError(f"output key escapes the store: {key!r}")
        return target

    def put(self, key: str, data: bytes, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class OutputStoreError(EngineError):
    """The output store refused or failed a read or write (502: the job's store, not its input)."""

    status = 502
    code = "output_store_unavailable"


def _checked_key(key: str) -> str:
    """A relative object key with no empty, '.' or '..' segments (so no key escapes its base prefix)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"output key must be a relative path without '.', '..' or empty segments: {key!r}")
    return key


class S3OutputStore:
    """Objects under ``s3://bucket/<base>``: one PUT replaces a whole object (S3 never shows half
    of one), ``get`` answers None for NoSuchKey, ``exists`` is one HEAD."""

    def __init__(self, client: Any, bucket: str, base_prefix: str = "") -> None:
        base = base_prefix.strip("/")
        self._client = client
        self.bucket = bucket
        self.base = f"{base}/" if base else ""

    def _key(self, key: str) -> str:
        return self.base + _checked_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        full = self._key(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        except Exception as error:  # botocore's errors, worded for a person
            raise OutputStoreError(describe_error(error, self.bucket, full, action="writing",
                                                  permission="s3:PutObject")) from None

    def get(self, key: str) -> bytes | None:
        full = self._key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            with response["Body"] as body:
                return body.read()
        except Exception as error:
            if is_missing(error):
                return None
            raise OutputStoreError(describe_error(error, self.bucket, full, action="reading",
                                                  permission="s3:GetObject")) from None

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=full)
        except Exception as error:
            if is_missing(error):
                return False
            raise OutputStoreError(describe_error(error, self.bucket, full, action="reading",
                                                  permission="s3:GetObject")) from None
        return True


def open_output_store(uri: str | None, *, s3_client: Any = None, s3_endpoint_url: str | None = None
                      ) -> OutputStore | None:
    """The store SDCLOUD_OUTPUT_STORE names; ``s3_client`` or ``s3_endpoint_url`` for an s3:// one."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return FolderOutputStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        try:
            bucket, base = parse_s3_uri(uri, need_key=False)
        except S3UriError as error:
            raise SettingsError(f"SDCLOUD_OUTPUT_STORE: {error} (use s3://bucket or s3://bucket/prefix)") from None
        client = s3_client if s3_client is not None else make_client(s3_endpoint_url)
        return S3OutputStore(client, bucket, base)
    raise SettingsError(
        f"SDCLOUD_OUTPUT_STORE: unsupported scheme {parsed.scheme!r} (use file:///abs/folder or s3://bucket[/prefix])"
    )
