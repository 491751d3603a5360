"""Where model bytes come from: one fetcher per URI scheme, all behind the ``Fetcher`` port.

The cache streams from ``open`` while hashing, so a fetcher never buffers a whole checkpoint.
``file://`` is here; ``s3://`` plugs in through the same interface.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from ..errors import ModelUnavailable


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
    """Models on a local or mounted file system (local mode, tests, EFS)."""

    def open(self, uri: str) -> BinaryIO:
        path = file_uri_path(uri)
        try:
            return open(path, "rb")  # the cache closes it
        except FileNotFoundError:
            raise ModelUnavailable(f"model file {path} does not exist") from None
        except IsADirectoryError:
            raise ModelUnavailable(f"model path {path} is a folder, not a file") from None
        except PermissionError:
            raise ModelUnavailable(f"model file {path} is not readable (permission denied)") from None

    def size(self, uri: str) -> int:
        path = file_uri_path(uri)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ModelUnavailable(f"model file {path} does not exist") from None
        except PermissionError:
            raise ModelUnavailable(f"model file {path} is not readable (permission denied)") from None
        if not os.path.isfile(path):
            raise ModelUnavailable(f"model path {path} is not a regular file")
        return stat.st_size
