"""Where model bytes come from: one fetcher per URI scheme, all behind the ``Fetcher`` port.

The cache streams from ``open`` while hashing, so a fetcher never buffers a whole checkpoint.
``file://`` is here; ``s3://`` plugs in through the same interface.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
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
