"""Where a job's PNGs go when it names ``output.prefix`` (SageMaker async keeps responses small).

``file:///abs/folder`` is a folder shared with the middleware's blob store in local mode; an S3
store joins through the same two methods with the AWS adapters.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class OutputStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...


class FolderOutputStore:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        target = (self._root / key).resolve()
        if self._root not in target.parents:
            raise ValueError(f"output key escapes the store: {key!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so a reader never sees half a PNG.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def open_output_store(uri: str | None) -> OutputStore | None:
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return FolderOutputStore(Path(parsed.path))
    raise SystemExit(f"SDCLOUD_OUTPUT_STORE: unsupported scheme {parsed.scheme!r} (use file:///abs/folder)")
