"""HTTP client of the SD Cloud middleware (the contract's /v1 API), built on requests.

Safe retries: a request is sent again only when that cannot do the work twice (see retrying.py).
Jobs are followed by long-polling (`?wait=&version=`), never by polling on a fixed interval.
The API key travels only in the Authorization header to the middleware: never in a URL, a log
line or an exception message, and never to a blob URL (those are signed on their own).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from PIL import Image
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from . import __version__
from .errors import (
    ApiError,
    ConnectionFailed,
    JobCancelled,
    JobFailed,
    RateLimited,
    SDCloudError,
    ServerError,
    Timeout,
    ValidationFailed,
    api_error_from_problem,
)
from .records import Endpoint, Job, ModelInfo, Page, ResultImage, ServerInfo, User
from .retrying import (
    is_repeatable,
    parse_retry_after,
    retry_delay,
    should_retry_status,
    should_retry_transport,
)

log = logging.getLogger("sdcloud.client")

# The middleware answers a long-poll after at most `wait` seconds; allow this much on top for the
# network and a slow gateway before calling it a timeout.
LONG_POLL_MARGIN_S = 10.0
MAX_LONG_POLL_WAIT_S = 30
DEFAULT_POLL_WAIT_S = 20
# A server that ignores `wait` and answers at once must not turn waiting into a busy loop.
MIN_POLL_INTERVAL_S = 0.5
# AWS mode checks a completed upload's sha256 in the library function (up to Lambda's 15 min).
UPLOAD_VERIFY_WAIT_S = 20 * 60

TimeoutSpec = tuple[float, float]

_NOT_TRANSPORT = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def _strip_query(url: str) -> str:
    """The URL without query and fragment: signed-URL signatures stay out of logs and errors."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def validate_api_url(base_url: str) -> str:
    url = (base_url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"api_url must look like http://host:port or https://host (got {url!r})")
    if parts.username or parts.password:
        raise ValueError("api_url must not contain a user name or password; use the API key setting")
    if parts.query or parts.fragment:
        raise ValueError("api_url must not contain a query string or fragment")
    return url


def _validated_api_key(api_key: str | None) -> str:
    key = (api_key or "").strip()
    # requests echoes a bad header value in its exception text; refuse it before it gets there
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise ValueError("api_key contains a control character (line break?); paste the key again")
    return key


def _sent_nothing(exc: BaseException) -> bool:
    """True for transport errors raised before any byte of the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        inner = exc.args[0] if exc.args else None
        if isinstance(inner, MaxRetryError):
            inner = inner.reason
        return isinstance(inner, (NewConnectionError, ConnectTimeoutError))
    return False


def _transport_reason(exc: BaseException) -> str:
    if _sent_nothing(exc):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return "connection timed out"
        return "connection refused or host unreachable"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer in time"
    return "connection lost"


class SDCloudClient:
    """Client of one SD Cloud middleware for one API key. Thread-safe for concurrent calls."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: TimeoutSpec = (3.05, 30),
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = validate_api_url(base_url)
        self._api_key = _validated_api_key(api_key)
        self.timeout: TimeoutSpec = (float(timeout[0]), float(timeout[1]))
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SDCloudClient({self.base_url!r}, api_key={'set' if self._api_key else 'unset'})"

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SDCloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- API ---------------------------------------------------------------------------------

    def ping(self) -> ServerInfo:
        return ServerInfo.from_json(self._json("GET", "/v1/ping", auth=False))

    def me(self) -> User:
        return User.from_json(self._json("GET", "/v1/me"))

    def submit_inference(
        self,
        task: str,
        payload: dict[str, Any],
        checkpoint: str,
        endpoint: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit one generation. One key per logical submit, so a retried POST returns the same job."""
        body: dict[str, Any] = {"task": task, "payload": payload, "checkpoint": checkpoint}
        if endpoint:
            body["endpoint"] = endpoint
        key = idempotency_key or uuid.uuid4().hex
        return Job.from_json(self._json("POST", "/v1/inferences", body=body, idempotency_key=key))

    def get_inference(self, job_id: str, wait: float = 0, version: int | None = None) -> Job:
        """The job view; with wait > 0 the server holds the answer until the job's version changes."""
        params: dict[str, Any] = {}
        timeout = self.timeout
        if wait and wait > 0:
            wait_s = min(int(round(wait)), MAX_LONG_POLL_WAIT_S)
            params["wait"] = wait_s
            timeout = (self.timeout[0], max(self.timeout[1], wait_s + LONG_POLL_MARGIN_S))
        if version is not None:
            params["version"] = int(version)
        return Job.from_json(
            self._json("GET", f"/v1/inferences/{_segment(job_id)}", params=params, timeout=timeout)
        )

    def list_inferences(self, limit: int = 20, cursor: str | None = None) -> Page[Job]:
        params: dict[str, Any] = {"limit": int(limit)}
        if cursor:
            params["cursor"] = cursor
        return Page.from_json(self._json("GET", "/v1/inferences", params=params), Job.from_json)

    def iter_inferences(self, page_size: int = 50) -> Iterator[Job]:
        """Every job visible to this key, newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            page = self.list_inferences(limit=page_size, cursor=cursor)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def cancel_inference(self, job_id: str) -> Job:
        return Job.from_json(self._json("DELETE", f"/v1/inferences/{_segment(job_id)}"))

    def skip_inference(self, job_id: str) -> Job:
        """End the batch iteration the job is sampling and go on with the next (the WebUI's Skip).

        Raises Conflict when the job is not running (or is being cancelled)."""
        return Job.from_json(self._json("POST", f"/v1/inferences/{_segment(job_id)}/skip"))

    def list_endpoints(self) -> list[Endpoint]:
        return Page.from_json(self._json("GET", "/v1/endpoints"), Endpoint.from_json).items

    def list_models(self, type: str | None = "checkpoint") -> list[ModelInfo]:
        """The cloud's models of one type (checkpoint, lora, ...); every type with type=None.

        Every page is fetched: callers (pickers, sync) need the whole list."""
        return list(self.iter_models(type))

    def iter_models(self, type: str | None = None, page_size: int = 200, **filters: str) -> Iterator[ModelInfo]:
        """The caller's models and the public ones, page by page (filters: visibility, owner, q)."""
        params: dict[str, Any] = {"limit": int(page_size), **{k: v for k, v in filters.items() if v}}
        if type:
            params["type"] = type
        seen: set[str] = set()
        while True:
            page = Page.from_json(self._json("GET", "/v1/models", params=params), ModelInfo.from_json)
            yield from page.items
            # an older middleware ignores the cursor and answers the same list: stop, do not loop
            if not page.next_cursor or not page.items or page.next_cursor in seen:
                return
            seen.add(page.next_cursor)
            params["cursor"] = page.next_cursor

    # ---- the model library (issue 9): uploads are driven by sdcloud.models.uploader ----------

    def declare_upload(
        self, name: str, type: str, size: int, sha256: str, visibility: str = "private"
    ) -> dict[str, Any]:
        """Declare a model upload: the plan (part URLs) or, for stored content, the finished record."""
        body = {"name": name, "type": type, "size": int(size), "sha256": sha256, "visibility": visibility}
        result: dict[str, Any] = self._json("POST", "/v1/models/uploads", body=body,
                                            idempotency_key=uuid.uuid4().hex)
        return result

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """The upload's state: parts received and fresh URLs for the missing ones."""
        result: dict[str, Any] = self._json("GET", f"/v1/models/uploads/{_segment(upload_id, 'upload id')}")
        return result

    def complete_upload(
        self, upload_id: str, parts: list[dict[str, Any]], wait_s: float = UPLOAD_VERIFY_WAIT_S,
        poll_s: float = 2.0, sleep: Callable[[float], None] = time.sleep,
    ) -> ModelInfo:
        """Ask the server to verify (size, sha256, safetensors header) and store the model.

        In AWS mode the check reads the object back in another function and the call answers
        202 ``verifying`` at once: this follows the upload until it ends (at most ``wait_s``).
        A file that fails the check raises ValidationFailed (422), as the inline check does."""
        data = _dict_of(self._json("POST", f"/v1/models/uploads/{_segment(upload_id, 'upload id')}/complete",
                                   body={"parts": parts}, idempotency_key=uuid.uuid4().hex))
        deadline = time.monotonic() + wait_s
        while data.get("status") == "verifying":
            if time.monotonic() > deadline:
                raise Timeout(f"upload {upload_id} was still being verified after {wait_s:.0f} s; "
                              "its state: GET /v1/models/uploads/" + upload_id)
            sleep(poll_s)
            data = self.get_upload(upload_id)
        if data.get("status") == "failed":
            raise ValidationFailed(422, "Upload rejected", str(data.get("error") or "the server rejected the file"))
        return ModelInfo.from_json(data.get("model"))

    def abort_upload(self, upload_id: str) -> None:
        self._json("DELETE", f"/v1/models/uploads/{_segment(upload_id, 'upload id')}")

    def start_import(
        self, url: str, name: str, type: str, sha256: str | None = None, visibility: str = "private"
    ) -> dict[str, Any]:
        """Ask the server to fetch ``url`` into the library; returns the import's state
        (``import_id``, ``status``: importing, or failed at once with ``error``)."""
        body: dict[str, Any] = {"url": url, "name": name, "type": type, "visibility": visibility}
        if sha256:
            body["sha256"] = sha256
        result: dict[str, Any] = self._json("POST", "/v1/models/imports", body=body)
        return result

    def get_import(self, import_id: str) -> dict[str, Any]:
        """An import's state: ``bytes`` so far, then ``model`` (complete) or ``error`` (failed)."""
        result: dict[str, Any] = self._json("GET", f"/v1/models/imports/{_segment(import_id, 'import id')}")
        return result

    def get_model(self, model_id: str) -> ModelInfo:
        return ModelInfo.from_json(self._json("GET", f"/v1/models/{_model_segment(model_id)}"))

    def delete_model(self, model_id: str) -> None:
        self._json("DELETE", f"/v1/models/{_model_segment(model_id)}")

    def set_model_visibility(self, model_id: str, visibility: str) -> ModelInfo:
        if visibility not in ("private", "public"):
            raise ValueError(f"visibility must be 'private' or 'public' (got {visibility!r})")
        return ModelInfo.from_json(self._json(
            "PATCH", f"/v1/models/{_model_segment(model_id)}", body={"visibility": visibility}))

    def absolute_url(self, url: str) -> str:
        """A URL the server gave (signed part / blob URL) made absolute against the API base."""
        return urljoin(self.base_url + "/", url)

    # ---- endpoint admin (admins only: others get Forbidden; local mode refuses with a reason) --

    def describe_endpoint(self, name: str) -> Endpoint:
        return Endpoint.from_json(self._json("GET", f"/v1/endpoints/{_segment(name, 'endpoint name')}"))

    def create_endpoint(self, spec: dict[str, Any], idempotency_key: str | None = None) -> Endpoint:
        """Deploy an endpoint from `spec` (name, instance_type, kind, min/max_instances, image).

        Safe to retry: the server treats the name as the idempotency key (the same spec again
        answers the existing endpoint); the Idempotency-Key header only lets our retry policy know."""
        if not str(spec.get("name") or "").strip():
            raise ValueError("an endpoint needs a name")
        key = idempotency_key or uuid.uuid4().hex
        return Endpoint.from_json(self._json("POST", "/v1/endpoints", body=dict(spec), idempotency_key=key))

    def scale_endpoint(self, name: str, min_instances: int, max_instances: int) -> Endpoint:
        body = {"min_instances": int(min_instances), "max_instances": int(max_instances)}
        # setting absolute counts twice changes nothing, so a key makes the POST safe to retry
        return Endpoint.from_json(self._json(
            "POST", f"/v1/endpoints/{_segment(name, 'endpoint name')}/scale", body=body,
            idempotency_key=uuid.uuid4().hex))

    def stop_endpoint(self, name: str) -> Endpoint:
        """No instances until scaled again (async: min = max = 0, jobs wait; real-time: the endpoint
        goes, its model and config stay)."""
        return Endpoint.from_json(self._json(
            "POST", f"/v1/endpoints/{_segment(name, 'endpoint name')}/stop", idempotency_key=uuid.uuid4().hex))

    def delete_endpoint(self, name: str) -> None:
        self._json("DELETE", f"/v1/endpoints/{_segment(name, 'endpoint name')}")

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Any /v1 call not wrapped yet, with the same auth, errors and retry rules.

        A POST is retried only when given an idempotency_key.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/' (got {path!r})")
        return self._json(method.upper(), path, params=params, body=body, idempotency_key=idempotency_key)

    # ---- waiting -----------------------------------------------------------------------------

    def watch_inference(
        self,
        job_id: str,
        timeout: float = 600,
        poll_wait: float = DEFAULT_POLL_WAIT_S,
        first: Job | None = None,
    ) -> Iterator[Job]:
        """Yield the job now and then each time it changes, until it is terminal.

        `first` (e.g. the view submit_inference returned) saves the initial request.
        Raises Timeout when `timeout` seconds pass first; the job keeps running on the server.
        """
        deadline = time.monotonic() + timeout
        job = first if first is not None and first.id == job_id else self.get_inference(job_id)
        yield job
        while not job.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(
                    f"job {job_id} did not finish within {timeout:g} s (last status: {job.status}); "
                    "it may still finish: look in the job history"
                )
            wait = max(1, min(int(poll_wait), int(remaining) or 1))
            started = time.monotonic()
            latest = self.get_inference(job_id, wait=wait, version=job.version)
            changed = latest.version != job.version or latest.status != job.status
            job = latest
            if changed:
                yield job
            elif time.monotonic() - started < MIN_POLL_INTERVAL_S:
                self._sleep(MIN_POLL_INTERVAL_S)

    def wait_for(
        self,
        job_id: str,
        timeout: float = 600,
        on_progress: Callable[[Job], None] | None = None,
        poll_wait: float = DEFAULT_POLL_WAIT_S,
    ) -> Job:
        """Block until the job ends; call on_progress(job) on each change. Returns the succeeded job.

        Raises JobFailed / JobCancelled for those ends, Timeout when the deadline passes first.
        """
        job: Job | None = None
        for job in self.watch_inference(job_id, timeout=timeout, poll_wait=poll_wait):
            if on_progress is not None:
                on_progress(job)
        assert job is not None  # watch_inference always yields at least once
        return raise_for_job(job)

    # ---- images ------------------------------------------------------------------------------

    def fetch_image_bytes(self, image: ResultImage | str) -> bytes:
        """The image file's bytes exactly as stored."""
        response = self._send("GET", self._blob_url(image), auth=False)
        return response.content

    def download_image(
        self, image: ResultImage | str, dest_dir: str | os.PathLike[str], filename: str | None = None
    ) -> Path:
        """Save the image file unchanged (its PNG `parameters` infotext chunk included); return the path."""
        url = self._blob_url(image)
        if filename is None:
            filename = image.filename if isinstance(image, ResultImage) else _name_from_url(url)
        if Path(filename).name != filename or filename in ("", ".", ".."):
            raise ValueError(f"filename must be a plain file name (got {filename!r})")
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / filename
        partial = dest / f".{filename}.{uuid.uuid4().hex[:8]}.part"
        response = self._send("GET", url, auth=False, stream=True)
        try:
            with open(partial, "wb") as fh:
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    fh.write(chunk)
            os.replace(partial, target)
        except requests.RequestException as exc:
            raise ConnectionFailed(
                f"download from {_strip_query(url)} failed: {_transport_reason(exc)}"
            ) from None
        finally:
            response.close()
            if partial.exists():
                partial.unlink()
        return target

    def fetch_image(self, image: ResultImage | str) -> Image.Image:
        """The image decoded with Pillow; `.info["parameters"]` holds the A1111 infotext."""
        img = Image.open(io.BytesIO(self.fetch_image_bytes(image)))
        img.load()
        return img

    # ---- transport ---------------------------------------------------------------------------

    def _blob_url(self, image: ResultImage | str) -> str:
        url = image.url if isinstance(image, ResultImage) else str(image)
        if not url:
            raise ValueError("image has no URL (the job result is incomplete)")
        return urljoin(self.base_url + "/", url)

    def _headers(self, auth: bool, idempotency_key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": f"sdcloud-client/{__version__}"}
        if auth and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        auth: bool = True,
        timeout: TimeoutSpec | None = None,
    ) -> Any:
        response = self._send(
            method,
            self.base_url + path,
            params=params,
            body=body,
            idempotency_key=idempotency_key,
            auth=auth,
            timeout=timeout,
        )
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                response.status_code, "Bad response", "the server's answer was not JSON; is api_url right?"
            ) from None

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        auth: bool = True,
        timeout: TimeoutSpec | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One logical request with the safe-retry policy; returns a 2xx response or raises."""
        headers = self._headers(auth, idempotency_key)
        data: bytes | None = None
        if body is not None:
            # allow_nan=False: NaN/Infinity are not JSON and the server would refuse them anyway
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        repeatable = is_repeatable(method, bool(idempotency_key))
        shown = _strip_query(url)
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=timeout or self.timeout,
                    stream=stream,
                    allow_redirects=False,
                )
            except _NOT_TRANSPORT as exc:
                # a malformed request: sending it again cannot help
                raise SDCloudError(f"{method} {shown}: invalid request ({type(exc).__name__})") from None
            except requests.RequestException as exc:
                sent = not _sent_nothing(exc)
                reason = _transport_reason(exc)
                log.debug("%s %s failed: %s (attempt %d)", method, shown, reason, attempt + 1)
                if attempt < self.retries and should_retry_transport(sent, repeatable):
                    self._sleep(retry_delay(attempt, self.backoff, None) or 0.0)
                    attempt += 1
                    continue
                cls = Timeout if isinstance(exc, requests.exceptions.Timeout) else ConnectionFailed
                raise cls(f"{method} {shown}: {reason}") from None
            status = response.status_code
            log.debug("%s %s -> %d (attempt %d)", method, shown, status, attempt + 1)
            if status < 300:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt < self.retries and should_retry_status(status, repeatable):
                delay = retry_delay(attempt, self.backoff, retry_after)
                if delay is not None:
                    response.close()
                    self._sleep(delay)
                    attempt += 1
                    continue
            raise self._error_from(response, retry_after)

    def _error_from(self, response: requests.Response, retry_after: float | None) -> ApiError:
        status = response.status_code
        if 300 <= status < 400:
            return ApiError(status, "Redirect", "the server redirected; check api_url (http vs https, path)")
        problem: Any = None
        try:
            problem = response.json()
        except ValueError:
            text = (response.text or "").strip()
            problem = {
                "title": response.reason or "",
                "detail": text[:300] if text and "<" not in text else "",
            }
        finally:
            response.close()
        error = api_error_from_problem(status, problem, retry_after=retry_after)
        return self._scrubbed(error)

    def _scrubbed(self, error: ApiError) -> ApiError:
        """Belt and braces: a server (or proxy) that echoes our headers must not leak the key."""
        key = self._api_key
        if key and key in str(error.args) + json.dumps(error.problem, default=str):
            kwargs: dict[str, Any] = {}
            if isinstance(error, RateLimited):
                kwargs["retry_after"] = error.retry_after
            errors = [
                type(e)(e.field.replace(key, "***"), e.message.replace(key, "***")) for e in error.errors
            ]
            problem = json.loads(json.dumps(error.problem, default=str).replace(key, "***"))
            return type(error)(
                error.status,
                error.title.replace(key, "***"),
                error.detail.replace(key, "***"),
                errors,
                problem,
                **kwargs,
            )
        return error


def raise_for_job(job: Job) -> Job:
    """Return a succeeded job; raise JobFailed / JobCancelled for the other ends."""
    if job.status == "failed":
        raise JobFailed(job)
    if job.status == "cancelled":
        raise JobCancelled(job)
    if job.status != "succeeded":
        raise SDCloudError(f"job {job.id} is still {job.status}")
    return job


def _segment(value: str, what: str = "job id") -> str:
    """A path segment from an id, refusing anything that would change the path."""
    text = str(value)
    if not text or "/" in text or "?" in text or "#" in text or text in (".", ".."):
        raise ValueError(f"{what} {text!r} is not a valid id")
    return text


def _model_segment(model_id: str) -> str:
    """A model id as one path segment: ids may hold the model's name (spaces, colons), so quote it."""
    return quote(_segment(model_id, "model id"), safe="")


def _dict_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name_from_url(url: str) -> str:
    tail = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return tail or "image.png"
