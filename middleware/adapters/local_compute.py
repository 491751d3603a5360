"""Compute on a local inference container, emulating a SageMaker asynchronous endpoint.

Per job a worker thread reads the job document from ``jobs/<id>/request.json`` (SageMaker's
InputLocation) and POSTs it to the container's ``/invocations`` while a poller relays
``GET /progress`` to the job record. The container writes ``jobs/<id>/images/<n>.png`` and
``jobs/<id>/result.json`` under the document's ``output.prefix`` into the same folder (it runs
with ``SDCLOUD_OUTPUT_STORE=file://<the blob folder>``), and the worker hands ``result.json`` to
the same ``JobEvents`` completion path that AWS notifications use. Every outcome ends in a
report: a job never stays running because of this module.

Cancel and skip reach the GPU twice over: a job-scoped marker in the blob store (what the
container checks between steps, and all SageMaker async offers) and the container's own
``POST /jobs/<id>/interrupt`` or ``/skip``. After a cancel the worker keeps reading the answer
(the container sends the images sampled so far), for at most ``cancel_wait_s``.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from middleware.domain.job import (
    Progress,
    cancel_marker_key,
    image_key,
    preview_key,
    result_key,
    skip_marker_key,
)
from middleware.ports import BlobStore, EndpointState, JobEvents

log = logging.getLogger(__name__)

# Statuses that mean "not now": the container's queue is full, or it is still loading.
_RETRY_LATER = {429, 503}
# Live previews are latent-resolution JPEGs (a few KB); anything far larger is not one.
MAX_PREVIEW_BASE64 = 512 * 1024


@dataclass
class _Active:
    job_id: str
    conn: http.client.HTTPConnection | None = None
    cancelled: bool = False
    abandoned: bool = False  # we hung up on the container (cancel unanswered, or shutting down)
    stop_polling: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    preview_step: int = 0  # the step of the live preview stored for this job


class ContainerUnreachable(Exception):
    pass


class LocalCompute:
    def __init__(
        self,
        container_url: str,
        blobs: BlobStore,
        events: JobEvents,
        *,
        endpoint_name: str = "local",
        workers: int = 1,
        poll_interval_s: float = 0.25,
        connect_timeout_s: float = 5.0,
        connect_retries: int = 3,
        retry_backoff_s: float = 0.5,
        request_timeout_s: float = 3600.0,
        busy_retry_s: float = 300.0,
        cancel_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(container_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"container URL must look like http://host:port (got {container_url!r})")
        self.url = container_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._blobs = blobs
        self._events = events
        self._endpoint_name = endpoint_name
        self._workers = max(1, int(workers))
        self._poll_interval = poll_interval_s
        self._connect_timeout = connect_timeout_s
        self._connect_retries = max(0, int(connect_retries))
        self._retry_backoff = retry_backoff_s
        self._request_timeout = request_timeout_s
        self._busy_retry = busy_retry_s
        self._cancel_wait = cancel_wait_s
        self._sleep = sleep
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- Compute port ----------------------------------------------------------------------------

    def submit(self, job_id: str, request_key: str, endpoint: str | None = None) -> None:
        if endpoint is not None and endpoint != self._endpoint_name:
            # A wiring mistake, caught before a job runs on a container nobody chose.
            raise ValueError(f"endpoint {endpoint!r} is not served here (this is {self._endpoint_name!r})")
        self._queue.put((job_id, request_key))

    def cancel(self, job_id: str) -> None:
        with self._lock:
            active = self._active.get(job_id)
            if active is None:
                # Remembered until a worker takes the job from the queue; bounded because a
                # cancel may name a job this process never queued.
                if len(self._cancelled) >= 10_000:
                    self._cancelled.clear()
                self._cancelled.add(job_id)
                return
            active.cancelled = True
        self._blobs.put_bytes(
            cancel_marker_key(job_id), json.dumps({"action": "interrupt"}).encode(), "application/json"
        )
        self._tell_container(f"/jobs/{quote(job_id)}/interrupt", {})
        # The socket stays open: the container answers with the images sampled so far. Only if it
        # does not within cancel_wait_s do we hang up (and the job ends cancelled with the reason).
        timer = threading.Timer(self._cancel_wait, self._abandon, args=(active,))
        timer.daemon = True
        timer.start()

    def skip(self, job_id: str, iteration: int) -> None:
        self._blobs.put_bytes(
            skip_marker_key(job_id), json.dumps({"iteration": int(iteration)}).encode(), "application/json"
        )
        self._tell_container(f"/jobs/{quote(job_id)}/skip", {"iteration": int(iteration)})

    def _tell_container(self, path: str, body: dict[str, Any]) -> None:
        """Best effort, off the caller's thread (an API request must not wait on a hung
        container): the marker already written is what a container without the route obeys."""
        threading.Thread(
            target=self._post_quietly, args=(path, body), name="sdcloud-tell-container", daemon=True
        ).start()

    def _post_quietly(self, path: str, body: dict[str, Any]) -> None:
        try:
            status, data = self._request("POST", path, timeout=5.0, body=json.dumps(body).encode())
        except OSError as exc:
            log.info("inference container at %s: %s failed: %s", self.url, path, _reason(exc))
            return
        if status >= 300:
            log.info("inference container at %s: %s answered HTTP %d", self.url, path, status)

    def _abandon(self, active: _Active) -> None:
        """Hang up on the container for this job (unblocks the worker's read at once)."""
        if active.done.is_set():
            return
        with self._lock:
            active.abandoned = True
            conn = active.conn
        active.stop_polling.set()
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def endpoints(self) -> list[EndpointState]:
        try:
            status, body = self._request("GET", "/ping", timeout=2.0)
        except OSError as exc:
            return [
                EndpointState(
                    self._endpoint_name,
                    "local",
                    "OutOfService",
                    f"inference container at {self.url} is not reachable: {exc}",
                )
            ]
        if status == 200:
            return [
                EndpointState(self._endpoint_name, "local", "InService", f"inference container at {self.url}")
            ]
        state = _json_or_empty(body).get("status") or f"HTTP {status}"
        return [
            EndpointState(
                self._endpoint_name, "local", "OutOfService", f"inference container at {self.url}: {state}"
            )
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self._workers):
            thread = threading.Thread(
                target=self._worker, name=f"sdcloud-compute-{self._endpoint_name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        with self._lock:
            active = list(self._active.values())
        for job in active:
            # Not a cancel: the jobs stay running in the store, and the next start's recovery
            # says what became of them.
            self._abandon(job)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    # -- worker ----------------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                # Jobs left in the queue stay queued in the store; recovery submits them again
                # on the next start.
                return
            job_id, request_key = item
            try:
                self._run(job_id, request_key)
            except Exception as exc:  # noqa: BLE001 - every job must end in a report
                log.exception("local worker failed on job %s", job_id)
                self._events.job_failed(job_id, "internal_error", f"the local worker failed: {exc}")
            finally:
                with self._lock:
                    active = self._active.pop(job_id, None)
                if active is not None:
                    active.done.set()
                    active.stop_polling.set()

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self._connect_timeout)

    def _connect(self, active: _Active) -> http.client.HTTPConnection:
        last: OSError | None = None
        for attempt in range(self._connect_retries + 1):
            if active.cancelled:
                raise ContainerUnreachable("cancelled")
            conn = self._connection()
            try:
                conn.connect()
                return conn
            except OSError as exc:
                last = exc
                conn.close()
                if attempt < self._connect_retries:
                    self._sleep(self._retry_backoff * (2**attempt))
        raise ContainerUnreachable(f"inference container at {self.url} is not reachable: {_reason(last)}")

    def _run(self, job_id: str, request_key: str) -> None:
        active = _Active(job_id)
        with self._lock:
            if job_id in self._cancelled:
                self._cancelled.discard(job_id)
                return
            self._active[job_id] = active
        try:
            # The document goes to the container byte for byte, as SageMaker sends InputLocation.
            body = self._blobs.get_bytes(request_key)
        except KeyError:
            self._events.job_failed(
                job_id, "request_missing", f"the job's request is missing from the blob store ({request_key})"
            )
            return
        started = False
        busy_deadline = time.monotonic() + self._busy_retry
        busy_attempt = 0
        while True:
            try:
                conn = self._connect(active)
            except ContainerUnreachable as exc:
                self._report_failure(active, "container_unreachable", str(exc))
                return
            if not started:
                if not self._events.job_started(job_id):
                    conn.close()
                    return
                started = True
                self._start_poller(active)
            with self._lock:
                active.conn = conn
            try:
                status, headers, data = self._invoke(conn, body)
            except (OSError, http.client.HTTPException) as exc:
                active.stop_polling.set()
                if active.abandoned and active.cancelled:
                    self._report_failure(
                        active,
                        "cancel_unanswered",
                        f"inference container at {self.url} did not answer the cancel within "
                        f"{self._cancel_wait:g} s; the images sampled so far are lost",
                    )
                else:
                    self._report_failure(
                        active,
                        "container_error",
                        f"inference container at {self.url} dropped the connection while running the job: "
                        f"{_reason(exc)}",
                    )
                return
            finally:
                conn.close()
            if status in _RETRY_LATER and time.monotonic() < busy_deadline and not active.cancelled:
                # Waiting for capacity is what SageMaker's async queue does; keep the job alive.
                self._events.job_heartbeat(job_id)
                delay = _retry_after(headers) or min(self._retry_backoff * (2**busy_attempt), 5.0)
                busy_attempt += 1
                self._sleep(delay)
                continue
            break
        active.stop_polling.set()
        if status == 200:
            self._complete(job_id, data)
        else:
            code, message = _container_error(status, data, self.url)
            # After a cancel, the job's record turns this into "cancelled" (see JobEventHandler.fail).
            self._events.job_failed(job_id, code, message)

    def _report_failure(self, active: _Active, code: str, message: str) -> None:
        if active.abandoned and not active.cancelled:
            return  # shutting down: the job stays running, recovery reports it on the next start
        if active.cancelled and code == "container_unreachable":
            code, message = "cancelled", "cancelled before the container took the job"
        self._events.job_failed(active.job_id, code, message)

    def _invoke(self, conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if conn.sock is not None:
            conn.sock.settimeout(self._request_timeout)
        conn.request(
            "POST",
            "/invocations",
            body=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def _complete(self, job_id: str, data: bytes) -> None:
        """Hand the job's result.json to the completion path. The container writes it under
        ``output.prefix``; when it did not (an older or other container, or one started without
        SDCLOUD_OUTPUT_STORE), the 200 body is the result document, with images either written
        already (``output.images``) or inline as base64 (A1111's shape): we store those and write
        result.json ourselves, so the completion path is the same either way."""
        key = result_key(job_id)
        if not self._blobs.exists(key):
            try:
                self._blobs.put_bytes(key, self._result_from_response(job_id, data), "application/json")
            except (ValueError, TypeError, KeyError, binascii.Error) as exc:
                self._events.job_failed(
                    job_id,
                    "bad_container_response",
                    f"inference container at {self.url} sent an unusable result: {exc}",
                )
                return
        self._events.job_succeeded(job_id, key)

    def _result_from_response(self, job_id: str, data: bytes) -> bytes:
        response = json.loads(data)
        if not isinstance(response, dict):
            raise ValueError("response is not a JSON object")
        output = response.get("output")
        if isinstance(output, dict) and isinstance(output.get("images"), list):
            keys = [str(img["key"]) for img in output["images"]]
        else:
            images = response.get("images")
            if not isinstance(images, list) or (not images and not response.get("interrupted")):
                raise ValueError("response has no images")
            keys = []
            for n, encoded in enumerate(images):
                key = image_key(job_id, n)
                self._blobs.put_bytes(key, base64.b64decode(encoded, validate=True), "image/png")
                keys.append(key)
        result = {
            "id": job_id,
            "output": {"images": [{"key": k} for k in keys]},
            "parameters": response.get("parameters") or {},
            "info": response.get("info") or "",
            "interrupted": bool(response.get("interrupted")),
        }
        return json.dumps(result).encode()

    # -- progress ----------------------------------------------------------------------------------

    def _start_poller(self, active: _Active) -> None:
        thread = threading.Thread(
            target=self._poll_progress,
            args=(active,),
            name=f"sdcloud-progress-{active.job_id[:8]}",
            daemon=True,
        )
        thread.start()

    def _poll_progress(self, active: _Active) -> None:
        conn: http.client.HTTPConnection | None = None
        while not active.stop_polling.wait(self._poll_interval):
            try:
                if conn is None:
                    conn = self._connection()
                # Ask for this job by id: with several callers sharing a container, the running job
                # may be someone else's while ours waits in its queue.
                conn.request("GET", f"/progress?job_id={quote(active.job_id)}")
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                # Silence is the sweeper's business: no heartbeat is recorded for this poll.
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if active.stop_polling.is_set():
                break
            if resp.status == 404:  # alive, but has not received ours yet
                self._events.job_heartbeat(active.job_id)
                continue
            if resp.status != 200:
                continue
            report = _json_or_empty(data)
            if report.get("job_id") == active.job_id:
                self._store_preview(active, report)
                report["preview_step"] = active.preview_step
                self._events.job_progress(active.job_id, Progress.from_dict(report))
            else:
                # The container is alive but busy with something else (or has not started ours).
                self._events.job_heartbeat(active.job_id)
        if conn is not None:
            conn.close()

    def _store_preview(self, active: _Active, report: dict[str, Any]) -> None:
        """Keep a newer live preview in the blob store (where the job view links it), as the
        container would write it to S3 in AWS mode. A malformed or oversized one is dropped."""
        step, encoded = report.get("preview_step"), report.get("preview")
        if not isinstance(step, int) or step <= active.preview_step or not isinstance(encoded, str):
            return
        if len(encoded) > MAX_PREVIEW_BASE64:
            return
        try:
            jpeg = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return
        self._blobs.put_bytes(preview_key(active.job_id), jpeg, "image/jpeg")
        active.preview_step = step

    # -- helpers -----------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, timeout: float, body: bytes | None = None
    ) -> tuple[int, bytes]:
        conn = self._connection()
        conn.timeout = timeout
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except http.client.HTTPException as exc:
            raise OSError(str(exc)) from exc
        finally:
            conn.close()


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text


def _json_or_empty(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, min(float(headers.get("retry-after", "")), 30.0))
    except ValueError:
        return None


def _container_error(status: int, data: bytes, url: str) -> tuple[str, str]:
    body = _json_or_empty(data)
    detail = body.get("detail")
    if not isinstance(detail, str) or not detail:
        snippet = data[:200].decode("utf-8", "replace").strip()
        detail = f"inference container at {url} answered HTTP {status}" + (f": {snippet}" if snippet else "")
    field = body.get("field")
    if isinstance(field, str) and field and field not in detail:
        detail = f"{detail} (field {field})"
    code = body.get("code") if isinstance(body.get("code"), str) else f"http_{status}"
    return code, detail
