"""The output store: where a job's PNGs and result document go when it names ``output.prefix``,
and where the job-scoped cancel/skip markers are read from (SageMaker async has no cancel call).

``file:///abs/folder`` is a folder shared with the middleware's blob store in local mode; an S3
store joins through the same three methods with the AWS adapters. The port is shaped for an
object store: ``put`` replaces a whole object at once (a reader never sees half of it), ``get``
answers None for a missing key (S3 ``NoSuchKey``) and ``exists`` is one HEAD request.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

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


def open_output_store(uri: str | None) -> OutputStore | None:
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return FolderOutputStore(Path(unquote(parsed.path)))
    raise SettingsError(f"SDCLOUD_OUTPUT_STORE: unsupported scheme {parsed.scheme!r} (use file:///abs/folder)")
