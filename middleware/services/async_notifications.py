"""SageMaker asynchronous-inference notifications, as SNS hands them to a Lambda: parsing only.

SNS delivers ``{"Records": [{"EventSource": "aws:sns", "Sns": {..., "Message": "<JSON text>"}}]}``;
the message is SageMaker's ``InferenceResult`` document (``invocationStatus`` Completed or
Failed, ``inferenceId``, ``responseParameters.outputLocation`` on success, ``failureReason`` on
failure). Where SageMaker puts ``failureLocation`` is not documented, so it is looked for anywhere
in the message. Pure functions: no I/O, so every shape is unit-tested from recorded samples.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

# SageMaker takes 1-64 characters for InferenceId; ours are job ids (32 hex digits), and the id
# becomes part of blob keys, so only key-safe characters pass.
_INFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_REASON_CHARS = 2000
_MAX_SEARCH_DEPTH = 8


class NotificationError(ValueError):
    """A record that is not a SageMaker async notification we can act on (the message says why)."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class AsyncResult:
    """One notification: what became of inference ``job_id``."""

    job_id: str
    succeeded: bool
    output_location: S3Location | None = None
    failure_reason: str = ""
    failure_location: S3Location | None = None
    message_id: str = ""


def parse_s3_uri(uri: Any) -> S3Location | None:
    """``s3://bucket/key`` → a location; None for anything else (an absent or unusable location
    only means there is nothing more to read, not that the notification is bad)."""
    if not isinstance(uri, str) or not uri:
        return None
    parts = urlsplit(uri)
    key = unquote(parts.path.lstrip("/"))
    if parts.scheme != "s3" or not parts.netloc or not key:
        return None
    return S3Location(parts.netloc, key)


def sns_messages(event: Any) -> list[tuple[int, Any]]:
    """The SNS records of a Lambda event, numbered (the number only names a record in logs).

    Raises NotificationError when the event itself is not an SNS event: nothing in it can be used.
    """
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise NotificationError("not an SNS event: it has no Records list")
    return list(enumerate(event["Records"]))


def parse_record(record: Any) -> AsyncResult:
    """One SNS record → the notification it carries. Raises NotificationError saying what is wrong."""
    if not isinstance(record, dict) or not isinstance(record.get("Sns"), dict):
        raise NotificationError("record has no Sns object")
    sns = record["Sns"]
    text = sns.get("Message")
    if not isinstance(text, str):
        raise NotificationError("Sns.Message is not a string")
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise NotificationError(f"Sns.Message is not JSON ({exc.msg})") from None
    message_id = sns.get("MessageId")
    return replace(parse_message(message), message_id=message_id if isinstance(message_id, str) else "")


def parse_message(message: Any) -> AsyncResult:
    """SageMaker's notification document → what became of the inference."""
    if not isinstance(message, dict):
        raise NotificationError("the notification is not a JSON object")
    job_id = message.get("inferenceId")
    if not isinstance(job_id, str) or not _INFERENCE_ID.match(job_id):
        raise NotificationError("the notification has no usable inferenceId")
    status = message.get("invocationStatus")
    if status == "Completed":
        response = message.get("responseParameters")
        output = parse_s3_uri(response.get("outputLocation")) if isinstance(response, dict) else None
        return AsyncResult(job_id, True, output_location=output)
    if status == "Failed":
        reason = message.get("failureReason")
        return AsyncResult(
            job_id,
            False,
            failure_reason=reason if isinstance(reason, str) else "",
            failure_location=parse_s3_uri(_find_key(message, "failureLocation")),
        )
    raise NotificationError(f"invocationStatus is {status!r}, not Completed or Failed")


def _find_key(value: Any, name: str, depth: int = 0) -> Any:
    """The first value under key ``name`` anywhere in nested dicts/lists (breadth before depth)."""
    if depth > _MAX_SEARCH_DEPTH:
        return None
    if isinstance(value, dict):
        if name in value:
            return value[name]
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _find_key(child, name, depth + 1)
        if found is not None:
            return found
    return None


# -- failure reasons ---------------------------------------------------------------------------

# "ClientError: ", "ModelError: ", "InternalFailure: " ...: SageMaker's error class, not news to a person.
_ERROR_CLASS = re.compile(r"^\s*[A-Z][A-Za-z]*(?:Error|Exception|Failure|Fault)\s*:\s*")
# "... See https://...logEventViewer... in account 123456789012 for more information." and
# "See the SageMaker endpoint logs ...": where to look, with an account id nobody asked for.
_SEE_MORE = re.compile(r"\s*\bSee\b[^.]*?(?:https?://\S+[^.]*?)?\bfor more information\.?\s*$", re.S)
_ACCOUNT = re.compile(r"\bin account \d{12}\b")
_WITH_MESSAGE = re.compile(r'with message\s+"(?P<body>.*)"\s*\.?\s*$', re.S)
_SERVER_ERROR = re.compile(r"Received (?:server|client) error \((?P<status>\d{3})\) from (?:model|primary)")


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


def container_error(body: Any) -> Reason | None:
    """The container's own error answer (``{"code", "detail", "field"?}``), as stored by SageMaker
    at the failure location or quoted in the reason; None when it is not one."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if not isinstance(detail, str) or not detail.strip():
        return None
    code = body.get("code") if isinstance(body.get("code"), str) and body.get("code") else "container_error"
    field = body.get("field")
    if isinstance(field, str) and field and field not in detail:
        detail = f"{detail} (field {field})"
    return Reason(code, _bounded(detail))


def readable_reason(failure_reason: str) -> Reason:
    """SageMaker's ``failureReason`` without its boilerplate, keeping the container's own words.

    ``ClientError: Received server error (500) from model with message "{...detail...}". See
    https://... in account ... for more information.`` becomes the container's ``detail``; a
    reason with no message keeps what it says, minus the error class and the pointer to logs.
    """
    text = (failure_reason or "").strip()
    if not text:
        return Reason("inference_failed", "SageMaker reported the inference failed and gave no reason")
    text = _SEE_MORE.sub("", text)
    text = _ACCOUNT.sub("", text).strip()
    quoted = _WITH_MESSAGE.search(text)
    if quoted:
        body = quoted.group("body").replace('\\"', '"')
        own = container_error(body)
        if own is not None:
            return own
        if body.strip():
            return Reason(_code_for(text), _bounded(body.strip()))
    text = _ERROR_CLASS.sub("", text).strip().rstrip(".").strip()
    return Reason(_code_for(failure_reason), _bounded(text or "SageMaker reported the inference failed"))


def _code_for(text: str) -> str:
    match = _SERVER_ERROR.search(text)
    if match:
        return "container_error" if match.group("status").startswith("5") else "invalid_request"
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "inference_timeout"
    if "expired" in lowered or "ttl" in lowered:
        return "request_expired"
    return "inference_failed"


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"
