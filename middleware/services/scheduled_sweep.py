"""One scheduled sweep (AWS mode's sweeper Lambda), reported as a small summary for its logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Enough ids to find the jobs in the logs; the count says if there were more.
_IDS_SHOWN = 20


class Sweeper(Protocol):
    def sweep_once(self) -> list[str]: ...


def sweep_summary(sweeper: Sweeper) -> dict[str, Any]:
    """Run ``sweeper.sweep_once()`` (which relays published progress first, where the runtime
    wires a relay) and say what it ended. Errors propagate: the schedule runs again next minute."""
    started = time.monotonic()
    ended = sweeper.sweep_once()
    summary = {
        "ended": len(ended),
        "job_ids": ended[:_IDS_SHOWN],
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if ended:
        log.warning("sweep ended %d job(s): %s", len(ended), ", ".join(ended[:_IDS_SHOWN]))
    return summary


def sweep_handler(sweeper: Callable[[], Sweeper]) -> Callable[..., dict[str, Any]]:
    """A Lambda handler for the sweeper's schedule; ``sweeper()`` is asked at the first event."""

    def handler(event: Any = None, context: object = None) -> dict[str, Any]:
        return sweep_summary(sweeper())

    return handler
