"""Where model bytes come from: one fetcher per URI scheme, all behind the ``Fetcher`` port.

The cache streams from ``open`` while hashing, so a fetcher never buffers a whole checkpoint.
``file://`` reads local or mounted folders, ``s3://`` reads the middleware's content-addressed
``models/<sha256>`` objects with the container's role.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable
from urllib.parse import unquote, urlparse

from ..errors import ModelUnavailable
from ..s3 import S3UriError, describe_error, parse_s3_uri

log = logging.getLogger(__name__)


@runtime_checkable
class Fetcher(Protocol):
    """Reads model bytes for one URI scheme."""

    def open(self, uri: str) -> BinaryIO:
        """A readable binary stream of the model's bytes; ModelUnavailable if it cannot be read."""
        ...

    def size(self, uri: str) -> int:
        """The size in bytes at ``uri``; ModelUnavailable if it does not exist."""
        ...


def file_uri_path(uri: str) -> Path:
    """The local path of a ``file:///abs/path`` URI (percent-escapes decoded)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ModelUnavailable(f"not a file:// URI: {uri}")
    if parsed.netloc not in ("", "localhost"):
        raise ModelUnavailable(f"file:// URIs must name a local path, not host {parsed.netloc!r}")
    path = unquote(parsed.path)
    if not path.startswith("/"):
        raise ModelUnavailable(f"file:// URI must hold an absolute path: {uri}")
    return Path(path)


class FileFetcher:
    """Models on a local or mounted file system (local mode, tests, EFS), confined to ``roots``.

    A job names its model by URI, so without confinement it could read any file the container
    can. Paths are resolved (symlinks followed) before the check, and nothing about a path
    outside the roots (exists? size? hash?) is ever reported back.
    """

    def __init__(self, roots: Iterable[Path | str]) -> None:
        self.roots = tuple(Path(os.path.realpath(Path(r).expanduser())) for r in roots)

    def _confined(self, uri: str) -> Path:
        path = file_uri_path(uri)
        real = Path(os.path.realpath(path))
        if not any(real == root or root in real.parents for root in self.roots):
            where = ", ".join(str(r) for r in self.roots) or "none configured"
            raise ModelUnavailable(
                f"file:// model URIs must point into the model folders (SDCLOUD_MODEL_ROOTS: {where}); "
                f"{path} is outside them"
            )
        return real

    def open(self, uri: str) -> BinaryIO:
        path = self._confined(uri)
        try:
            # O_NOFOLLOW: the resolved path must not have become a symlink since the check.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise ModelUnavailable(f"model file {path} does not exist") from None
        except IsADirectoryError:
            raise ModelUnavailable(f"model path {path} is a folder, not a file") from None
        except PermissionError:
            raise ModelUnavailable(f"model file {path} is not readable (permission denied)") from None
        except OSError:
            raise ModelUnavailable(f"model file {path} cannot be opened") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ModelUnavailable(f"model path {path} is not a regular file")
        return os.fdopen(fd, "rb")  # the cache closes it

    def size(self, uri: str) -> int:
        path = self._confined(uri)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise ModelUnavailable(f"model file {path} does not exist") from None
        except PermissionError:
            raise ModelUnavailable(f"model file {path} is not readable (permission denied)") from None
        if not stat.S_ISREG(info.st_mode):
            raise ModelUnavailable(f"model path {path} is not a regular file")
        return info.st_size


class S3Fetcher:
    """Models in S3 (``s3://bucket/key``), read with the container's role, optionally confined to
    ``buckets`` (SDCLOUD_MODEL_BUCKETS) the way FileFetcher is confined to its folders.

    ``open`` streams one GET; when the connection drops part-way it resumes with a ranged GET from
    the byte it got to, pinned to the first response's ETag, so a multi-GB download survives a
    network blip and can never splice two versions of an object together.
    """

    def __init__(self, client: Any, buckets: Iterable[str] = (), *, resume_attempts: int = 3) -> None:
        self._client = client
        self.buckets = frozenset(buckets)
        self._resume_attempts = resume_attempts

    def _confined(self, uri: str) -> tuple[str, str]:
        try:
            bucket, key = parse_s3_uri(uri)
        except S3UriError as error:
            raise ModelUnavailable(str(error)) from None
        if self.buckets and bucket not in self.buckets:
            allowed = ", ".join(sorted(self.buckets))
            raise ModelUnavailable(
                f"s3:// model URIs must point into the model buckets (SDCLOUD_MODEL_BUCKETS: {allowed}); "
                f"bucket {bucket!r} is not one of them"
            )
        return bucket, key

    def size(self, uri: str) -> int:
        bucket, key = self._confined(uri)
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except Exception as error:  # botocore's errors: worded for a person, never echoed raw
            raise ModelUnavailable(_model_error(error, bucket, key)) from None
        return int(head["ContentLength"])

    def open(self, uri: str) -> BinaryIO:
        bucket, key = self._confined(uri)
        stream = _S3ObjectStream(self._client, bucket, key, resume_attempts=self._resume_attempts)
        stream.start()
        return cast(BinaryIO, stream)  # the cache reads it in 1 MiB chunks and closes it


def _model_error(error: BaseException, bucket: str, key: str) -> str:
    return describe_error(error, bucket, key, action="reading", permission="s3:GetObject")


class _S3ObjectStream(io.RawIOBase):
    """One S3 object as a raw binary stream, resuming dropped connections with ranged GETs."""

    def __init__(self, client: Any, bucket: str, key: str, *, resume_attempts: int) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._resume_attempts = resume_attempts
        self._body: Any = None
        self._etag: str | None = None
        self._size = 0
        self._position = 0
        self.resumes = 0

    def readable(self) -> bool:
        return True

    def start(self) -> None:
        """The first GET: errors (no such key, denied) surface here, before the cache writes anything."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except Exception as error:
            raise ModelUnavailable(_model_error(error, self._bucket, self._key)) from None
        self._body = response["Body"]
        self._etag = response.get("ETag")
        self._size = int(response["ContentLength"])

    def _reopen(self) -> None:
        self._close_body()
        extra = {"IfMatch": self._etag} if self._etag else {}
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key,
                                               Range=f"bytes={self._position}-", **extra)
        except Exception as error:
            raise ModelUnavailable(_model_error(error, self._bucket, self._key)) from None
        self._body = response["Body"]

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size:
            return 0
        want = min(len(buffer), self._size - self._position)
        failures = 0
        while True:
            try:
                if self._body is None:
                    self._reopen()
                data = self._body.read(want)
                if not data:  # the connection ended before Content-Length bytes came
                    raise ConnectionError("stream ended early")
            except ModelUnavailable:
                raise
            except Exception as error:  # dropped or timed-out connection: resume where we got to
                failures += 1
                self._close_body()
                if failures > self._resume_attempts:
                    raise ModelUnavailable(
                        f"reading s3://{self._bucket}/{self._key} failed: the connection dropped "
                        f"{failures} times at byte {self._position} of {self._size}"
                    ) from None
                log.warning("s3://%s/%s: connection lost at byte %d (%s); resuming", self._bucket, self._key,
                            self._position, type(error).__name__)
                self.resumes += 1
                continue
            size = len(data)
            buffer[:size] = data
            self._position += size
            return size

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception:  # already broken; nothing to release
                log.debug("closing an S3 response body failed", exc_info=True)

    def close(self) -> None:
        self._close_body()
        super().close()
