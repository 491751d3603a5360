"""Compute on SageMaker endpoints (AWS mode).

An asynchronous endpoint gets ``invoke_endpoint_async(InputLocation=s3://<bucket>/<request key>,
InferenceId=<job id>)``: SageMaker queues the job, the container reads the document, writes its
images and ``result.json`` under ``output.prefix`` and SageMaker's SNS notification reaches the
completion handler (another Lambda). What the invoke returned (OutputLocation, FailureLocation) is
kept in ``jobs/<id>/invocation.json`` for that handler. A real-time endpoint blocks for the whole
job, so it runs apart from the request that submitted it and its answer goes to the same
``JobEvents`` completion as local mode. In a long-running process that is a worker thread; in AWS
Lambda, which freezes the process once the HTTP response is sent, it is an asynchronous
(``InvocationType="Event"``) invocation of the real-time function (``realtime_function``), whose
handler (``lambda_realtime_handler``) runs the job to its end.

SageMaker has no call to reach a running async job, so cancel and skip are the job-scoped markers
``<output.prefix>cancel`` / ``<output.prefix>skip`` in the bucket, which the container reads between
steps (``inference_container/control.py``).

Names: jobs name an endpoint by its SD Cloud name ("default", "sdxl", ...); an ``EndpointDirectory``
maps it to a SageMaker endpoint and its kind. ``StaticEndpointDirectory`` comes from the
``SDCLOUD_SAGEMAKER_ENDPOINTS`` setting. botocore is imported only where AWS is called, because the
settings module imports this file's parser in local mode too.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from middleware.domain.job import (
    cancel_marker_key,
    invocation_key,
    output_prefix,
    result_key,
    skip_marker_key,
)
from middleware.ports import BlobStore, EndpointState, JobEvents

log = logging.getLogger(__name__)

SETTING = "SDCLOUD_SAGEMAKER_ENDPOINTS"
EXAMPLE = "default=async:sdcloud-sd15,fast=realtime:sdcloud-turbo"
KINDS = ("async", "realtime")
# SageMaker's documented ranges (FACTS.md, AWS section).
MAX_INFERENCE_ID = 64
INVOCATION_TIMEOUT_RANGE = (1, 3600)
REQUEST_TTL_RANGE = (60, 21600)
# A real-time invocation carries the document inline; SageMaker caps that payload at 6 MB.
MAX_REALTIME_BODY = 6 * 1024 * 1024

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
# SageMaker's own rule for endpoint names.
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_NOT_FOUND_HINTS = ("could not find", "not found", "does not exist")
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable"}


REALTIME_EVENT = "realtime-job"  # the "sdcloud" marker of the real-time function's events


# --- endpoint names -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SageMakerTarget:
    endpoint_name: str
    kind: str  # "async" | "realtime"


class EndpointDirectory(Protocol):
    """SD Cloud endpoint names -> SageMaker endpoints. Static from settings here; the endpoint
    admin may provide a dynamic one (endpoints created from the API)."""

    def resolve(self, name: str) -> SageMakerTarget | None: ...

    def names(self) -> list[str]:
        """Every name, the default (first) one first."""


class StaticEndpointDirectory:
    def __init__(self, entries: Sequence[tuple[str, SageMakerTarget]]) -> None:
        if not entries:
            raise ValueError(f"{SETTING} names no endpoint; give at least one, like {EXAMPLE}")
        self._targets = dict(entries)
        self._names = [name for name, _ in entries]

    @classmethod
    def from_setting(cls, value: str) -> StaticEndpointDirectory:
        return cls(parse_sagemaker_endpoints(value))

    def resolve(self, name: str) -> SageMakerTarget | None:
        return self._targets.get(name)

    def names(self) -> list[str]:
        return list(self._names)


def parse_sagemaker_endpoints(value: str) -> tuple[tuple[str, SageMakerTarget], ...]:
    """``name=kind:endpoint-name,...`` in order (the first is the default; ``kind`` is async or
    realtime, and may be left out for async). Raises ValueError with a one-line message that
    names the setting and says what to fix."""
    text = (value or "").strip()
    if not text:
        raise ValueError(f"{SETTING} is empty; name the SageMaker endpoints like {EXAMPLE}")
    entries = [entry.strip() for entry in text.split(",")]
    parsed: list[tuple[str, SageMakerTarget]] = []
    seen: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        where = f"entry {position} of {len(entries)}" if len(entries) > 1 else "the value"
        if not entry:
            raise ValueError(f"{SETTING}: {where} is empty; remove the extra comma")
        name, sep, target = entry.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not target:
            raise ValueError(f"{SETTING}: {where} must look like name=async:endpoint-name (e.g. {EXAMPLE})")
        if not _NAME.match(name):
            shown = repr(name) if name else "an empty name"
            raise ValueError(
                f"{SETTING}: endpoint name {shown} in {where} is not allowed; "
                "use letters, digits, '_' and '-', 1 to 63 characters"
            )
        kind, colon, endpoint = target.partition(":")
        if not colon:
            kind, endpoint = "async", target
        kind, endpoint = kind.strip().lower(), endpoint.strip()
        if kind not in KINDS:
            raise ValueError(f"{SETTING}: endpoint {name!r} has kind {kind!r}; use async or realtime")
        if not _SAGEMAKER_NAME.match(endpoint):
            raise ValueError(
                f"{SETTING}: the SageMaker endpoint of {name!r} ({endpoint!r}) is not a valid endpoint "
                "name; SageMaker allows letters, digits and '-', up to 63 characters"
            )
        folded = name.lower()
        if folded in seen:
            raise ValueError(
                f"{SETTING}: endpoint name {name!r} is used twice (also as {seen[folded]!r}); "
                "give each endpoint its own name"
            )
        seen[folded] = name
        parsed.append((name, SageMakerTarget(endpoint, kind)))
    return tuple(parsed)


def check_invocation_limits(invocation_timeout_s: int, request_ttl_s: int) -> None:
    low, high = INVOCATION_TIMEOUT_RANGE
    if not low <= int(invocation_timeout_s) <= high:
        raise ValueError(f"the invocation timeout must be {low} to {high} s (got {invocation_timeout_s})")
    low, high = REQUEST_TTL_RANGE
    if not low <= int(request_ttl_s) <= high:
        raise ValueError(f"the request TTL must be {low} to {high} s (got {request_ttl_s})")


# --- errors ---------------------------------------------------------------------------------------


class SageMakerRefused(RuntimeError):
    """SageMaker (or the way to it) refused a call; the message says what to do, never a trace."""


def _error_parts(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    return str(error.get("Code") or ""), str(error.get("Message") or "")


def _is_not_found(exc: Exception) -> bool:
    code, message = _error_parts(exc)
    return code in ("ValidationException", "ResourceNotFound", "ResourceNotFoundException") and any(
        hint in message.lower() for hint in _NOT_FOUND_HINTS
    )


def _explain(exc: Exception, action: str, endpoint: str) -> str:
    """A sentence a person can act on, from a botocore error (no stack trace, no request ids)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code, message = _error_parts(exc)
        if code in _THROTTLED:
            return f"SageMaker is throttling {action} on {endpoint!r} even after retries; try again shortly"
        if code in ("AccessDeniedException", "AccessDenied"):
            return f"this deployment's role may not call {action} on SageMaker endpoint {endpoint!r}: {message}"
        return f"SageMaker refused {action} on {endpoint!r} ({code}): {message}"
    if isinstance(exc, BotoCoreError):
        return f"SageMaker could not be reached for {action} on {endpoint!r}: {exc}"
    return f"{action} on {endpoint!r} failed: {exc}"


def _explain_lambda(exc: Exception, function: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    what = f"the real-time job could not be handed to Lambda function {function!r}"
    if isinstance(exc, ClientError):
        code, message = _error_parts(exc)
        if code in _THROTTLED:
            return f"{what}: Lambda is throttling invocations even after retries; try again shortly"
        if code in ("AccessDeniedException", "AccessDenied"):
            return f"{what}: this deployment's role may not call lambda:InvokeFunction on it: {message}"
        return f"{what} ({code}): {message}"
    if isinstance(exc, BotoCoreError):
        return f"{what}: Lambda could not be reached: {exc}"
    return f"{what}: {exc}"


def _check_inference_id(job_id: str) -> None:
    if not 1 <= len(job_id) <= MAX_INFERENCE_ID or not job_id.isprintable():
        raise ValueError(f"a SageMaker InferenceId must be 1 to {MAX_INFERENCE_ID} printable characters")


# --- the real-time function's event --------------------------------------------------------------


@dataclass(frozen=True)
class RealtimeJob:
    """What the real-time function is asked to run: a job, its request document, and the SD Cloud
    name of its endpoint (resolved again there, so a removed endpoint fails the job cleanly)."""

    job_id: str
    request_key: str
    endpoint: str

    def payload(self) -> dict[str, str]:
        return {"sdcloud": REALTIME_EVENT, "job_id": self.job_id, "request_key": self.request_key,
                "endpoint": self.endpoint}  # fmt: skip

    @classmethod
    def from_event(cls, event: Any) -> RealtimeJob:
        """The job an event names; ValueError saying what is wrong with any other event."""
        if not isinstance(event, dict) or event.get("sdcloud") != REALTIME_EVENT:
            raise ValueError(f'not an SD Cloud real-time job event (no "sdcloud": "{REALTIME_EVENT}")')
        fields: dict[str, str] = {}
        for field in ("job_id", "request_key", "endpoint"):
            value = event.get(field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"the event's {field!r} must be a non-empty string")
            fields[field] = value
        _check_inference_id(fields["job_id"])
        if not _NAME.match(fields["endpoint"]):
            raise ValueError("the event's 'endpoint' is not an endpoint name")
        # Only the job's own documents: an event cannot make the function read another key.
        if not fields["request_key"].startswith(output_prefix(fields["job_id"])):
            raise ValueError("the event's 'request_key' is not under its job's own prefix")
        return cls(**fields)


# --- the Compute --------------------------------------------------------------------------------


class SageMakerCompute:
    def __init__(
        self,
        runtime: Any,
        sagemaker: Any,
        blobs: BlobStore,
        bucket: str,
        directory: EndpointDirectory,
        events: JobEvents,
        *,
        invocation_timeout_s: int = 3600,
        request_ttl_s: int = 21600,
        status_cache_s: float = 15.0,
        realtime_workers: int = 4,
        lambda_client: Any = None,
        realtime_function: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``runtime`` is a ``sagemaker-runtime`` client, ``sagemaker`` a ``sagemaker`` one (for
        describe_endpoint), both built with botocore's standard retry mode, which retries
        throttling. ``blobs`` is the store on ``bucket`` that the endpoints read and write.
        With ``realtime_function`` (a Lambda function name, SDCLOUD_REALTIME_FUNCTION_NAME), a
        real-time job is handed to that function through ``lambda_client`` instead of a thread."""
        check_invocation_limits(invocation_timeout_s, request_ttl_s)
        if not bucket:
            raise ValueError("the bucket of the job documents is needed (SDCLOUD_BLOB_BUCKET)")
        if realtime_function and lambda_client is None:
            raise ValueError("a Lambda client is needed to hand real-time jobs to " + repr(realtime_function))
        self._runtime = runtime
        self._sagemaker = sagemaker
        self._blobs = blobs
        self._bucket = bucket
        self._directory = directory
        self._events = events
        self._lambda = lambda_client
        self._realtime_function = realtime_function or None
        self._invocation_timeout = int(invocation_timeout_s)
        self._request_ttl = int(request_ttl_s)
        self._status_cache = status_cache_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(realtime_workers)), thread_name_prefix="sdcloud-rt")
        self._lock = threading.Lock()
        self._states: dict[str, tuple[float, EndpointState]] = {}

    # -- Compute port ----------------------------------------------------------------------------

    def submit(self, job_id: str, request_key: str, endpoint: str | None = None) -> None:
        name, target = self._target(endpoint)
        _check_inference_id(job_id)
        if target.kind == "realtime":
            # Blocks for the whole job: off the API's request, reported through JobEvents.
            if self._realtime_function:
                self._hand_to_function(RealtimeJob(job_id, request_key, name))
            else:
                self._pool.submit(self._run_realtime, job_id, request_key, name, target)
            return
        self._invoke_async(job_id, request_key, name, target)

    def cancel(self, job_id: str) -> None:
        # Harmless for a job that never ran: the container only reads markers of its own jobs.
        self._blobs.put_bytes(
            cancel_marker_key(job_id), json.dumps({"action": "interrupt"}).encode(), "application/json"
        )

    def skip(self, job_id: str, iteration: int) -> None:
        if isinstance(iteration, bool) or int(iteration) < 0:
            raise ValueError(f"the iteration to skip must be 0 or more (got {iteration!r})")
        self._blobs.put_bytes(
            skip_marker_key(job_id), json.dumps({"iteration": int(iteration)}).encode(), "application/json"
        )

    def endpoints(self) -> list[EndpointState]:
        states = []
        for name in self._directory.names():
            target = self._directory.resolve(name)
            if target is not None:
                states.append(self._state(name, target))
        return states

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Nothing to start: SageMaker runs the jobs (kept for ``ManagedCompute``)."""

    def stop(self, wait: bool = True) -> None:
        """Wait for real-time invocations in flight (tests, process exit)."""
        self._pool.shutdown(wait=wait)

    # -- submit ------------------------------------------------------------------------------------

    def _target(self, endpoint: str | None) -> tuple[str, SageMakerTarget]:
        names = self._directory.names()
        name = names[0] if endpoint is None and names else endpoint
        target = self._directory.resolve(name) if name else None
        if name is None or target is None:
            raise ValueError(f"endpoint {endpoint!r} is not configured (configured: {', '.join(names) or 'none'})")
        return name, target

    def _invoke_async(self, job_id: str, request_key: str, name: str, target: SageMakerTarget) -> None:
        try:
            answer = self._runtime.invoke_endpoint_async(
                EndpointName=target.endpoint_name,
                InputLocation=f"s3://{self._bucket}/{request_key}",
                InferenceId=job_id,
                ContentType="application/json",
                Accept="application/json",
                InvocationTimeoutSeconds=self._invocation_timeout,
                RequestTTLSeconds=self._request_ttl,
            )
        except Exception as exc:  # noqa: BLE001 - every botocore failure becomes a readable refusal
            if _is_not_found(exc):
                raise ValueError(
                    f"SageMaker endpoint {target.endpoint_name!r} (endpoint {name!r}) does not exist; "
                    "create it or fix SDCLOUD_SAGEMAKER_ENDPOINTS"
                ) from None
            raise SageMakerRefused(_explain(exc, "InvokeEndpointAsync", target.endpoint_name)) from None
        record = {
            "endpoint": target.endpoint_name,
            "inference_id": answer.get("InferenceId") or job_id,
            "output_location": answer.get("OutputLocation"),
            "failure_location": answer.get("FailureLocation"),
            "invoked_at": int(self._wall_clock()),
        }
        try:
            self._blobs.put_bytes(invocation_key(job_id), json.dumps(record).encode(), "application/json")
        except Exception:  # noqa: BLE001 - the job runs anyway; the handler falls back to the job's keys
            log.warning("job %s: could not keep its invocation record", job_id, exc_info=True)

    # -- real-time ---------------------------------------------------------------------------------

    def _hand_to_function(self, job: RealtimeJob) -> None:
        """Queue the job for the real-time function. Lambda keeps an Event invocation (and
        retries it) independently of this process, which may be frozen as soon as it answers."""
        function = str(self._realtime_function)
        try:
            answer = self._lambda.invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps(job.payload()).encode()
            )
        except Exception as exc:  # noqa: BLE001 - every botocore failure becomes a readable refusal
            raise SageMakerRefused(_explain_lambda(exc, function)) from None
        status = answer.get("StatusCode")
        if status != 202:  # Lambda answers 202 when it has queued an Event invocation
            raise SageMakerRefused(
                f"Lambda did not queue the real-time job for function {function!r} (status {status})"
            )

    def lambda_realtime_handler(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The real-time function's handler: run the job an Event invocation names, to its end.

        A malformed event is logged and answered, never raised: Lambda would retry it and then
        dead-letter it, and no retry makes it well-formed. A job that already ran (a retried or
        duplicated delivery) is left alone by ``job_started``. Only a failure to report the job's
        end raises, so Lambda retries it."""
        try:
            job = RealtimeJob.from_event(event)
        except ValueError as exc:
            log.warning("real-time function: ignoring an event: %s", exc)
            return {"handled": False, "reason": str(exc)}
        try:
            target = self._directory.resolve(job.endpoint)
        except Exception as exc:  # noqa: BLE001 - the job ends with the reason instead of hanging
            log.warning("job %s: endpoint %r could not be looked up", job.job_id, job.endpoint, exc_info=True)
            self._events.job_failed(
                job.job_id, "endpoint_lookup_failed", f"endpoint {job.endpoint!r} could not be looked up: {exc}"
            )
            return {"handled": True, "job_id": job.job_id}
        if target is None or target.kind != "realtime":
            shown = "is no longer configured" if target is None else "is no longer a real-time endpoint"
            self._events.job_failed(
                job.job_id, "endpoint_not_configured", f"endpoint {job.endpoint!r} {shown}; generate again"
            )
            return {"handled": True, "job_id": job.job_id}
        self._run_realtime(job.job_id, job.request_key, job.endpoint, target)
        return {"handled": True, "job_id": job.job_id}

    def _run_realtime(self, job_id: str, request_key: str, name: str, target: SageMakerTarget) -> None:
        try:
            self._realtime(job_id, request_key, name, target)
        except Exception as exc:  # noqa: BLE001 - every job must end in a report
            log.exception("real-time invocation of job %s failed", job_id)
            self._events.job_failed(job_id, "internal_error", f"the real-time invocation failed: {exc}")

    def _realtime(self, job_id: str, request_key: str, name: str, target: SageMakerTarget) -> None:
        try:
            body = self._blobs.get_bytes(request_key)
        except KeyError:
            self._events.job_failed(
                job_id, "request_missing", f"the job's request is missing from the blob store ({request_key})"
            )
            return
        if len(body) > MAX_REALTIME_BODY:
            self._events.job_failed(
                job_id,
                "request_too_large",
                f"the request is {len(body)} bytes; real-time endpoint {name!r} accepts at most "
                f"{MAX_REALTIME_BODY} (use an async endpoint for large init images)",
            )
            return
        if not self._events.job_started(job_id):
            return  # cancelled while it waited for a worker
        try:
            answer = self._runtime.invoke_endpoint(
                EndpointName=target.endpoint_name,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
                InferenceId=job_id,
            )
            data = answer["Body"].read()
        except Exception as exc:  # noqa: BLE001 - mapped to a failure a person can act on
            code, message = _error_parts(exc)
            if code == "ModelError":
                response = getattr(exc, "response", None)
                original = (response.get("OriginalMessage") if isinstance(response, dict) else None) or message
                self._events.job_failed(job_id, "container_error", f"the model on {name!r} failed: {original}")
            elif _is_not_found(exc):
                self._events.job_failed(
                    job_id, "endpoint_missing", f"SageMaker endpoint {target.endpoint_name!r} does not exist"
                )
            else:
                self._events.job_failed(job_id, "sagemaker_error", _explain(exc, "InvokeEndpoint", target.endpoint_name))
            return
        key = result_key(job_id)
        if not self._blobs.exists(key):
            # A container without an output store answers with the result document itself.
            try:
                self._blobs.put_bytes(key, _result_document(job_id, data), "application/json")
            except (ValueError, TypeError, KeyError) as exc:
                self._events.job_failed(
                    job_id, "bad_container_response", f"endpoint {name!r} sent an unusable result: {exc}"
                )
                return
        self._events.job_succeeded(job_id, key)

    # -- endpoint states -------------------------------------------------------------------------

    def _state(self, name: str, target: SageMakerTarget) -> EndpointState:
        now = self._clock()
        with self._lock:
            cached = self._states.get(name)
        if cached is not None and now - cached[0] < self._status_cache:
            return cached[1]
        state = self._describe(name, target)
        with self._lock:
            self._states[name] = (now, state)
        return state

    def _describe(self, name: str, target: SageMakerTarget) -> EndpointState:
        try:
            described = self._sagemaker.describe_endpoint(EndpointName=target.endpoint_name)
        except Exception as exc:  # noqa: BLE001 - a listing reports a broken endpoint, never a 500
            if _is_not_found(exc):
                detail = f"SageMaker endpoint {target.endpoint_name!r} does not exist"
            else:
                detail = _explain(exc, "DescribeEndpoint", target.endpoint_name)
            return EndpointState(name, target.kind, "OutOfService", detail)
        status = str(described.get("EndpointStatus") or "Unknown")
        variants = described.get("ProductionVariants") or []
        instances = sum(int(v.get("CurrentInstanceCount") or 0) for v in variants)
        if status == "Failed":
            detail = f"SageMaker endpoint {target.endpoint_name}: {described.get('FailureReason') or 'failed'}"
        elif target.kind == "async" and status == "InService" and variants and instances == 0:
            detail = "scaled to zero"
        else:
            detail = f"SageMaker endpoint {target.endpoint_name}, {instances} instance(s)"
        return EndpointState(name, target.kind, status, detail)


def _result_document(job_id: str, data: bytes) -> bytes:
    response = json.loads(data)
    if not isinstance(response, dict):
        raise ValueError("response is not a JSON object")
    output = response.get("output")
    images = output.get("images") if isinstance(output, dict) else None
    if not isinstance(images, list):
        raise ValueError("response names no output.images")
    result = {
        "id": job_id,
        "output": {"images": [{"key": str(image["key"])} for image in images]},
        "parameters": response.get("parameters") or {},
        "info": response.get("info") or "",
        "interrupted": bool(response.get("interrupted")),
    }
    return json.dumps(result).encode()
