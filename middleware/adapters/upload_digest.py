"""The sha256 of an object whose parts arrive in any order, worked out while they arrive.

Completing a local upload used to read the whole object back to hash it: about a second per GiB
after the last byte was in. Here the digest follows the received prefix instead. A part written
where the prefix ends is hashed as its bytes go to disk (from the same buffers, no read); a part
that lands ahead of the prefix is hashed from the page cache once every part before it is in.
When the last part is in, the digest is too.

The digest is an optimisation, never a shortcut: whenever it cannot vouch for the bytes on disk
(a region already hashed is written again, the server restarted, a part was discarded midway) it
gives up, and completion falls back to reading the object back.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable

_READ_BLOCK = 8 * 1024 * 1024

# Reads `size` bytes at `offset` of the object being assembled.
ReadAt = Callable[[int, int], bytes]


class RunningDigest:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        self._waiting: dict[int, int] = {}  # offset -> size of parts received ahead of the prefix
        self._reading: int | None = None  # the offset of the part being read back, if any
        self._broken = False

    def rewriting(self, offset: int) -> None:
        """The part starting at ``offset`` is about to be written (again)."""
        with self._lock:
            self._waiting.pop(offset, None)
            if offset < self._hashed or offset == self._reading:
                self._broken = True  # bytes the digest holds, or is reading, may change

    def written(self, offset: int, chunks: Iterable[bytes]) -> None:
        """These chunks are now on disk at ``offset``: hash them if they extend the prefix."""
        with self._lock:
            if self._broken or self._reading is not None or offset != self._hashed:
                return
            for chunk in chunks:
                self._sha.update(chunk)
                self._hashed += len(chunk)

    def discarded(self, offset: int, written: int) -> None:
        """A part write stopped midway. If the prefix had run into it, the digest holds bytes
        that were never confirmed (they are sent again and may differ): it cannot be trusted."""
        with self._lock:
            if written and offset < self._hashed:
                self._broken = True

    def received(self, offset: int, size: int, read_at: ReadAt) -> None:
        """A whole part is on disk; hash whatever prefix is now complete, reading back the parts
        that came in ahead of it. One thread reads at a time, outside the lock, so the other
        part writers are not held up."""
        with self._lock:
            if self._broken:
                return
            if offset + size > self._hashed:  # not hashed live: wait for the prefix
                self._waiting[offset] = size
            # a part hashed live may have brought the prefix up to parts that came in earlier
            if self._reading is not None:
                return  # the thread reading back will come to it
            start, length = self._next_waiting()
        while length is not None:
            try:
                done = 0
                while done < length:
                    block = read_at(start + done, min(_READ_BLOCK, length - done))
                    if not block:
                        raise OSError("the upload's assembly file is shorter than its parts")
                    self._sha.update(block)
                    done += len(block)
            except OSError:
                with self._lock:
                    self._broken, self._reading = True, None
                return
            with self._lock:
                self._hashed = start + length
                start, length = self._next_waiting()

    def _next_waiting(self) -> tuple[int, int | None]:
        """Under the lock: claim the waiting part where the prefix ends, if there is one."""
        start = self._hashed
        length = None if self._broken else self._waiting.pop(start, None)
        self._reading = start if length is not None else None
        return start, length

    def result(self, size: int) -> str | None:
        """The hex sha256 when the digest covers exactly ``size`` bytes, else None."""
        with self._lock:
            if self._broken or self._reading is not None or self._hashed != size:
                return None
            return self._sha.hexdigest()
