"""When a request may be sent again, and how long to wait first (pure; no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from time import time as _now

# Methods a server must treat as safe to repeat (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})

# Answers that mean "not processed, try later": throttled, or a gateway / the service not ready.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# A server asking for a longer pause than this gets its error surfaced instead of a frozen UI.
MAX_RETRY_AFTER_S = 60.0
MAX_BACKOFF_S = 8.0


def is_repeatable(method: str, has_idempotency_key: bool) -> bool:
    """True when sending the request twice cannot do the work twice."""
    return method.upper() in IDEMPOTENT_METHODS or has_idempotency_key


def should_retry_status(status: int, repeatable: bool) -> bool:
    """A response status is worth another attempt only for repeatable requests."""
    return repeatable and status in RETRY_STATUSES


def should_retry_transport(sent: bool, repeatable: bool) -> bool:
    """A transport failure: always retry if nothing reached the server, else only if repeatable."""
    return (not sent) or repeatable


def parse_retry_after(value: str | None, now: Callable[[], float] = _now) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def backoff_delay(
    attempt: int,
    base: float,
    cap: float = MAX_BACKOFF_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with jitter: in [d/2, d] where d = min(cap, base * 2**attempt).

    Half the delay is fixed so retries never hammer the server; the other half is random so many
    clients throttled together do not come back in lockstep.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    return ceiling / 2 + rand() * ceiling / 2


def retry_delay(
    attempt: int,
    base: float,
    retry_after: float | None,
    cap: float = MAX_BACKOFF_S,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """The pause before attempt `attempt + 1`, or None to give up now.

    The server's Retry-After wins when given; one longer than MAX_RETRY_AFTER_S means give up, so the
    caller sees RateLimited (with the hint) instead of a UI frozen for minutes.
    """
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER_S else None
    return backoff_delay(attempt, base, cap, rand)
