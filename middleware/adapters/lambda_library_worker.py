"""The model library's long work in AWS mode: each piece runs in its own invocation of the
library function (``middleware/entrypoints/lambda_library.py``).

The API function answers within API Gateway's 29 s and Lambda freezes it once it has answered,
so two things cannot run there: an import by URL (minutes of download) and the sha256 check of
a completed upload (reading gigabytes back from S3). For each, the API queues an asynchronous
Event invocation of the library function, which has Lambda's full 15 minutes, and answers at
once; the client follows the import or the upload until it ends.

An import's URL travels in the event because the record keeps it without its query string,
where tokens live; nothing here logs an event's content.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

IMPORT_EVENT = "sdcloud-import"
VERIFY_EVENT = "sdcloud-verify-upload"


class LambdaLibraryWorker:
    """``start_import`` and ``verify_upload`` for ModelLibrary (its ``launcher`` and
    ``verifier``), each queuing one Event invocation of the library function."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        if not function_name:
            raise ValueError("the library function's name is needed (SDCLOUD_LIBRARY_FUNCTION_NAME)")
        self._lambda = lambda_client
        self._function = function_name

    def start_import(self, import_id: str, url: str) -> None:
        self._queue({"sdcloud": IMPORT_EVENT, "import_id": import_id, "url": url})

    def verify_upload(self, upload_id: str) -> None:
        self._queue({"sdcloud": VERIFY_EVENT, "upload_id": upload_id})

    def _queue(self, event: dict[str, str]) -> None:
        try:
            answer = self._lambda.invoke(
                FunctionName=self._function, InvocationType="Event", Payload=json.dumps(event).encode()
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors become one readable reason
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            raise RuntimeError(f"Lambda did not queue library function {self._function!r} ({code})") from None
        status = answer.get("StatusCode")
        if status != 202:  # Lambda answers 202 when it has queued an Event invocation
            raise RuntimeError(f"Lambda did not queue library function {self._function!r} (status {status})")


class LibraryWork(Protocol):
    def run_import(self, import_id: str, url: str) -> None: ...

    def run_verification(self, upload_id: str) -> None: ...


def library_event_handler(library: LibraryWork) -> Any:
    """The library function's handler: run the import or the verification an Event names.

    A malformed event is logged (without its content: it may carry a token) and answered, never
    raised, since no retry makes it well-formed. Both runs end their record themselves (failed or
    complete) and do nothing for one that already ended, so a duplicate delivery is harmless."""

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        kind = event.get("sdcloud") if isinstance(event, dict) else None
        if kind == IMPORT_EVENT and isinstance(event.get("import_id"), str) and isinstance(event.get("url"), str):
            library.run_import(event["import_id"], event["url"])
            return {"handled": True, "import_id": event["import_id"]}
        if kind == VERIFY_EVENT and isinstance(event.get("upload_id"), str):
            library.run_verification(event["upload_id"])
            return {"handled": True, "upload_id": event["upload_id"]}
        keys = sorted(event) if isinstance(event, dict) else type(event).__name__
        log.error("not a model library event (keys: %s); ignored", keys)
        return {"handled": False}

    return handler
