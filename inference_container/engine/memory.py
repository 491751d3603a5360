"""Recognising device out-of-memory errors and giving the memory back, in one place.

Generation converts OOM into ``OutOfMemory`` itself; the server applies the same rule to
everything else a job does (model loading included). torch is looked up, not imported: if it was
never imported, nothing can have run out of device memory.
"""

from __future__ import annotations

import gc
import sys


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None:
        oom_types = tuple(
            t
            for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
            if t
        )
        if oom_types and isinstance(exc, oom_types):
            return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_device_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
