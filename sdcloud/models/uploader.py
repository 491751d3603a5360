"""Upload one model file to the cloud's model library: hash, declare, parallel parts, complete.

Why hash first, in its own streaming pass, instead of hashing while the parts go out: the declare
call needs the sha256, and it is the declare call that answers "already stored" — so a file the
cloud holds costs zero bytes on the wire only if the hash is known before any part is sent. The
pass reads the file once (1 MiB at a time, never whole); sync's hash cache and the resume state
let a second run skip it.

Parts stream from a slice of the file (`_PartBody`): requests sends it with a Content-Length (S3's
presigned upload_part URLs refuse chunked bodies) and never holds more than one read block. Part
URLs are signed on their own: the API key never goes to them. A failed part is retried with
backoff; a refused one (an expired signature) gets a fresh URL from the upload's state first.

A small state file per source file (upload_id, path, size, mtime, sha256, api_url) lets the next
run, after the process was killed, ask the server which parts it holds and send only the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..client import SDCloudClient
from ..errors import ApiError, NotFound, SDCloudError
from ..records import ModelInfo
from ..settings import _write_private, default_settings_path

log = logging.getLogger("sdcloud.models")

MODEL_TYPES = ("checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler")
VISIBILITIES = ("private", "public")
DEFAULT_CONCURRENCY = 4
HASH_BLOCK = 1024 * 1024
# http.client reads a file-like body in blocks of this size (urllib3 asks for 16 KiB by default,
# which costs measurable CPU over gigabytes): larger blocks, still a bounded amount of memory
SEND_BLOCK = 1024 * 1024
PART_ATTEMPTS = 5
PART_TIMEOUT: tuple[float, float] = (5.0, 300.0)

# (phase, bytes done, bytes total): phase is "hashing" then "uploading"
ProgressFn = Callable[[str, int, int], None]


class UploadError(SDCloudError):
    """An upload that cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class UploadResult:
    model: ModelInfo
    bytes_sent: int  # part bytes this run put on the wire (retries included)
    deduplicated: bool  # the cloud held the content already: nothing was sent
    resumed_parts: int = 0  # parts an earlier, interrupted run had sent
    retried_parts: int = 0  # part attempts that failed and went again


def validate_name(name: str) -> str:
    """The library's name rules, checked before anything is read or sent."""
    text = name.strip()
    if not 1 <= len(text) <= 255:
        raise ValueError("a model name must be 1-255 characters")
    if "/" in text or "\\" in text or ".." in text:
        raise ValueError(f"model name {text!r} must be a plain file name (no '/', backslash or '..')")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("a model name must not contain control characters")
    return text


def validate_type(type_: str) -> str:
    if type_ not in MODEL_TYPES:
        raise ValueError(f"model type must be one of {', '.join(MODEL_TYPES)} (got {type_!r})")
    return type_


def sha256_of(path: Path, progress: ProgressFn | None = None, total: int | None = None) -> str:
    """The file's sha256 in one streaming pass (1 MiB blocks)."""
    digest = hashlib.sha256()
    done = 0
    size = total if total is not None else path.stat().st_size
    with open(path, "rb") as fh:
        while True:
            block = fh.read(HASH_BLOCK)
            if not block:
                break
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress("hashing", done, size)
    return digest.hexdigest()


def default_state_dir() -> Path:
    """`uploads/` beside the settings file (SDCLOUD_UI_SETTINGS, else ~/.config/sdcloud/)."""
    settings = os.environ.get("SDCLOUD_UI_SETTINGS") or str(default_settings_path())
    return Path(settings).expanduser().parent / "uploads"


# ---- resume state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResumeState:
    upload_id: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    api_url: str
    name: str
    type: str

    def matches(self, other: ResumeState) -> bool:
        """Same file unchanged, same server, same target: the upload may go on."""
        return (self.path, self.size, self.mtime_ns, self.api_url, self.name, self.type) == (
            other.path, other.size, other.mtime_ns, other.api_url, other.name, other.type)


class StateStore:
    """One small JSON file per source file, so concurrent uploads of different files never race."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _file(self, path: str) -> Path:
        return self.folder / f"{hashlib.sha1(path.encode('utf-8')).hexdigest()}.json"

    def load(self, path: str) -> ResumeState | None:
        try:
            data = json.loads(self._file(path).read_text(encoding="utf-8"))
            return ResumeState(**{k: data[k] for k in ResumeState.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable upload state for %s", path)
            return None

    def save(self, state: ResumeState) -> None:
        _write_private(self._file(state.path), json.dumps(state.__dict__, indent=1))

    def clear(self, path: str) -> None:
        try:
            self._file(path).unlink()
        except FileNotFoundError:
            pass


# ---- part bodies ------------------------------------------------------------------------------


class _PartBody:
    """A byte range of a file as a streaming request body, counting what went out."""

    def __init__(self, path: Path, offset: int, size: int, on_bytes: Callable[[int], None]) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close(), after the request
        self._fh.seek(offset)
        self._left = size
        self._size = size
        self._on_bytes = on_bytes

    def __len__(self) -> int:  # requests sets Content-Length from this
        return self._size

    def read(self, amount: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if amount is None or amount < 0 else min(max(amount, SEND_BLOCK), self._left)
        data = self._fh.read(want)
        if not data:
            raise UploadError("the file got shorter while it was being uploaded; upload it again")
        self._left -= len(data)
        self._on_bytes(len(data))
        return data

    def close(self) -> None:
        self._fh.close()


# ---- the uploader -----------------------------------------------------------------------------


@dataclass
class _Counters:
    total: int
    done: int = 0
    sent: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Uploader:
    """Uploads files through one client; `concurrency` parts in flight at most."""

    def __init__(
        self,
        client: SDCloudClient,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        state_dir: Path | None = None,
        attempts: int = PART_ATTEMPTS,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.concurrency = int(concurrency)
        self.states = StateStore(state_dir or default_state_dir())
        self.attempts = max(1, int(attempts))
        self.backoff = backoff
        self._sleep = sleep
        self._local = threading.local()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop between read blocks (the UI's Stop); the state stays, so a later run resumes."""
        self._cancel.set()

    # -- public

    def upload(
        self,
        path: str | os.PathLike[str],
        type: str,
        *,
        name: str | None = None,
        visibility: str = "private",
        sha256: str | None = None,
        progress: ProgressFn | None = None,
    ) -> UploadResult:
        """Upload (or resume, or deduplicate) one file; returns the stored model's record.

        `sha256`, when the caller knows it (sync's cache), saves the hashing pass."""
        source = Path(path).expanduser()
        try:
            stat = source.stat()
        except OSError as exc:
            raise ValueError(f"{source}: cannot read it ({exc.strerror or exc})") from None
        if not source.is_file():
            raise ValueError(f"{source} is not a file")
        if stat.st_size <= 0:
            raise ValueError(f"{source} is empty: nothing to upload")
        validate_type(type)
        model_name = validate_name(name if name is not None else source.name)
        if visibility not in VISIBILITIES:
            raise ValueError(f"visibility must be 'private' or 'public' (got {visibility!r})")
        self._cancel.clear()
        key = str(source.resolve())
        wanted = ResumeState("", key, stat.st_size, stat.st_mtime_ns, "", self.client.base_url, model_name, type)

        plan: dict[str, Any] | None = None
        saved = self.states.load(key)
        if saved is not None and saved.matches(wanted):
            plan = self._resumable(saved)
            sha256 = sha256 or saved.sha256  # the same file, unchanged: no second hashing pass
        if plan is None:
            self.states.clear(key)
            sha = sha256 or sha256_of(source, progress, stat.st_size)
            plan = self.client.declare_upload(model_name, type, stat.st_size, sha, visibility)
            if plan.get("status") == "complete":
                return UploadResult(ModelInfo.from_json(plan.get("model")), 0, True)
            upload_id = str(plan.get("upload_id") or "")
            if not upload_id:
                raise UploadError("the server answered an upload plan without an upload_id")
            saved = ResumeState(upload_id, key, stat.st_size, stat.st_mtime_ns, sha, self.client.base_url,
                                model_name, type)
            self.states.save(saved)
        assert saved is not None
        return self._send_and_complete(source, saved, plan, progress)

    # -- steps

    def _resumable(self, saved: ResumeState) -> dict[str, Any] | None:
        """The server's state of an earlier upload when it can go on, else None (start over)."""
        try:
            state = self.client.get_upload(saved.upload_id)
        except NotFound:
            return None
        except ApiError as exc:
            if exc.status in (403, 410):
                return None
            raise
        # verifying / complete: every byte is there (the last run stopped while the server checked
        # them); completing again follows the check to its end instead of sending the file again
        if state.get("status") not in ("uploading", "verifying", "complete"):
            return None
        return state

    def _send_and_complete(
        self, source: Path, saved: ResumeState, plan: dict[str, Any], progress: ProgressFn | None
    ) -> UploadResult:
        received = {int(p["number"]): p for p in plan.get("received") or []}
        missing = [p for p in plan.get("parts") or [] if int(p["number"]) not in received]
        part_size = int(plan.get("part_size") or 0)
        if missing and part_size <= 0:
            raise UploadError("the server's upload plan has no part_size")
        counters = _Counters(saved.size, done=sum(int(p.get("size") or 0) for p in received.values()))
        if progress is not None:
            progress("uploading", counters.done, counters.total)
        etags: dict[int, str] = {n: str(p.get("etag") or "") for n, p in received.items()}

        def one(part: dict[str, Any]) -> None:
            number = int(part["number"])
            offset = (number - 1) * part_size
            etags[number] = self._put_part(source, saved.upload_id, part, offset, counters, progress)

        if missing:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(missing)),
                                    thread_name_prefix="sdcloud-part") as pool:
                futures = [pool.submit(one, p) for p in sorted(missing, key=lambda p: int(p["number"]))]
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None:
                    self._cancel.set()  # the other workers stop at their next block
                    for f in pending:
                        f.cancel()
                    wait(pending)
                    exc = failed.exception()
                    assert exc is not None
                    raise exc
        parts = [{"number": n, "etag": etags[n]} for n in sorted(etags)]
        try:
            model = self.client.complete_upload(saved.upload_id, parts)
        except ApiError as exc:
            if exc.status == 422:  # the server failed the upload and removed it: no resume
                self.states.clear(saved.path)
            raise
        self.states.clear(saved.path)
        return UploadResult(model, counters.sent, False, resumed_parts=len(received),
                            retried_parts=counters.retries)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _put_part(
        self, source: Path, upload_id: str, part: dict[str, Any], offset: int, counters: _Counters,
        progress: ProgressFn | None,
    ) -> str:
        number, size = int(part["number"]), int(part["size"])
        url = str(part.get("url") or "")
        for attempt in range(self.attempts):
            if self._cancel.is_set():
                raise UploadError("upload stopped; run it again to resume")
            sent_here = 0

            def on_bytes(n: int) -> None:
                nonlocal sent_here
                if self._cancel.is_set():
                    raise UploadError("upload stopped; run it again to resume")
                sent_here += n
                with counters.lock:
                    counters.sent += n
                    counters.done += n
                    done, total = counters.done, counters.total
                if progress is not None:
                    progress("uploading", done, total)

            body = _PartBody(source, offset, size, on_bytes)
            status: int | None = None
            try:
                response = self._session().put(self.client.absolute_url(url), data=body, timeout=PART_TIMEOUT,
                                               headers={"Content-Type": "application/octet-stream"},
                                               allow_redirects=False)
                status = response.status_code
                if status < 300:
                    etag = response.headers.get("ETag", "")
                    response.close()
                    return etag
                response.close()
            except UploadError:
                raise
            except requests.RequestException as exc:
                log.debug("part %d: %s (attempt %d)", number, type(exc).__name__, attempt + 1)
            finally:
                body.close()
            # this attempt's bytes do not count as done: the part goes again from its start
            with counters.lock:
                counters.done -= sent_here
                counters.retries += 1
            if status is not None and 400 <= status < 500 and status not in (403, 408, 429):
                raise UploadError(f"part {number} was refused (HTTP {status}); upload the file again")
            if attempt + 1 < self.attempts:
                self._sleep(self.backoff * (2 ** attempt))
                if status == 403:  # an expired signature: ask for a fresh URL
                    url = self._fresh_url(upload_id, number) or url
        raise UploadError(f"part {number} failed {self.attempts} times; run the upload again to resume")

    def _fresh_url(self, upload_id: str, number: int) -> str | None:
        state = self.client.get_upload(upload_id)
        return next((str(p.get("url")) for p in state.get("parts") or [] if int(p["number"]) == number), None)


def upload_file(client: SDCloudClient, path: str | os.PathLike[str], type: str, **kwargs: Any) -> UploadResult:
    """One upload with the default settings (see Uploader.upload for the keywords)."""
    options = {k: kwargs.pop(k) for k in ("concurrency", "state_dir") if k in kwargs}
    return Uploader(client, **options).upload(path, type, **kwargs)
