"""Imports by URL in AWS mode: each one runs in its own invocation of the import function.

The API function cannot stream a multi-GiB download on a background thread (Lambda freezes the
process once the request is answered), so it queues an asynchronous Event invocation of the
import function (``middleware/entrypoints/lambda_import.py``) with the import's id and URL; that
invocation runs ``ModelLibrary.run_import`` for up to 15 minutes. The URL travels in the event
because the record keeps it without its query string, where tokens live; nothing here logs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IMPORT_EVENT = "sdcloud-import"


class LambdaImportLauncher:
    """An ``ImportLauncher`` (middleware.services.model_library) over a Lambda client."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        if not function_name:
            raise ValueError("the import function's name is needed (SDCLOUD_IMPORT_FUNCTION_NAME)")
        self._lambda = lambda_client
        self._function = function_name

    def __call__(self, import_id: str, url: str) -> None:
        payload = json.dumps({"sdcloud": IMPORT_EVENT, "import_id": import_id, "url": url}).encode()
        try:
            answer = self._lambda.invoke(FunctionName=self._function, InvocationType="Event", Payload=payload)
        except Exception as exc:  # noqa: BLE001 - botocore's errors become one readable reason
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            raise RuntimeError(f"Lambda did not queue import function {self._function!r} ({code})") from None
        status = answer.get("StatusCode")
        if status != 202:  # Lambda answers 202 when it has queued an Event invocation
            raise RuntimeError(f"Lambda did not queue import function {self._function!r} (status {status})")


def import_event_handler(run_import: Callable[[str, str], None]) -> Callable[[Any, Any], dict[str, Any]]:
    """The import function's handler: run the import an Event names.

    A malformed event is logged (without its content: it may carry a token) and answered, never
    raised, since no retry makes it well-formed. ``run_import`` ends the import itself, failed or
    complete, and does nothing for an import that already ended, so a duplicate delivery is
    harmless."""

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        if not (
            isinstance(event, dict)
            and event.get("sdcloud") == IMPORT_EVENT
            and isinstance(event.get("import_id"), str)
            and isinstance(event.get("url"), str)
        ):
            keys = sorted(event) if isinstance(event, dict) else type(event).__name__
            log.error("not an import event (keys: %s); ignored", keys)
            return {"handled": False}
        run_import(event["import_id"], event["url"])
        return {"handled": True, "import_id": event["import_id"]}

    return handler
