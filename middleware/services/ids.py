"""Job ids and clocks."""

from __future__ import annotations

import secrets
import threading
import time

_lock = threading.Lock()
_last_us = 0


def now_us() -> int:
    return time.time_ns() // 1000


def new_job_id() -> str:
    """32 hex digits: 14 of microseconds since the epoch, then 18 random.

    Ids sort by creation time (strictly, within one process), which keeps "oldest first" scans
    (recovery) on the primary index.
    """
    global _last_us
    with _lock:
        stamp = max(now_us(), _last_us + 1)
        _last_us = stamp
    return f"{stamp:014x}{secrets.token_hex(9)}"
