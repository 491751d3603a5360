"""Imports by URL from the client side: the server downloads, we start it and follow it.

Shared by the CLI (`python -m sdcloud.models import URL`) and the Cloud tab's Models page."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from ..client import SDCloudClient

POLL_S = 1.0


def name_from_url(url: str) -> str:
    """The file name the URL's path ends with (its query string, where tokens go, left out)."""
    name = unquote(urlsplit((url or "").strip()).path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        raise ValueError("the URL names no file; give the model a name")
    return name


def follow_import(
    client: SDCloudClient,
    state: dict[str, Any],
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Yield the import's state (from ``start_import``) now and after each poll while it runs;
    the last one yielded is its end (``complete`` with ``model``, or ``failed`` with ``error``)."""
    yield state
    import_id = str(state.get("import_id") or "")
    while state.get("status") == "importing":
        sleep(poll_s)
        state = client.get_import(import_id)
        yield state
