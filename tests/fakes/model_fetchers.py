"""A fake of the model cache's ``Fetcher`` port: bytes from memory, every open counted."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from inference_container.errors import ModelUnavailable


class _SlowReader(io.BytesIO):
    def __init__(self, data: bytes, chunk_delay: float, max_chunk: int) -> None:
        super().__init__(data)
        self._delay = chunk_delay
        self._max_chunk = max_chunk

    def read(self, size: int | None = -1) -> bytes:
        if self._delay:
            time.sleep(self._delay)  # widens the window in which concurrent fetches could overlap
        limit = self._max_chunk if size is None or size < 0 else min(size, self._max_chunk)
        return super().read(limit)


class CountingFetcher:
    """Serves ``blobs[uri]``; counts opens in memory and, optionally, in a file (across processes).

    ``claimed_sizes`` makes ``size()`` report something else than the bytes served (a source
    that changed under us); ``chunk_delay`` slows every read.
    """

    def __init__(
        self,
        blobs: dict[str, bytes],
        *,
        open_log: Path | None = None,
        chunk_delay: float = 0.0,
        max_chunk: int = 1 << 20,
        claimed_sizes: dict[str, int] | None = None,
    ) -> None:
        self.blobs = blobs
        self.open_log = open_log
        self.chunk_delay = chunk_delay
        self.max_chunk = max_chunk
        self.claimed_sizes = claimed_sizes or {}
        self.opens: list[str] = []
        self._lock = threading.Lock()

    def _data(self, uri: str) -> bytes:
        if uri not in self.blobs:
            raise ModelUnavailable(f"no object at {uri}")
        return self.blobs[uri]

    def size(self, uri: str) -> int:
        return self.claimed_sizes.get(uri, len(self._data(uri)))

    def open(self, uri: str) -> io.BytesIO:
        data = self._data(uri)
        with self._lock:
            self.opens.append(uri)
        if self.open_log is not None:
            fd = os.open(self.open_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{os.getpid()} {uri}\n".encode())
            finally:
                os.close(fd)
        return _SlowReader(data, self.chunk_delay, self.max_chunk)
