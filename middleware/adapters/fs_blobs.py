"""BlobStore on a folder, with HMAC-SHA256 signed expiring URLs served by the middleware itself.

Keys are validated before they touch the file system (no ``..``, no absolute paths, no hidden
segments), writes are atomic (temp file + rename), and the signing secret is created once and
kept in the data directory with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from middleware.adapters.upload_digest import RunningDigest
from middleware.domain.errors import Conflict
from middleware.ports import ReceivedPart

MAX_KEY_LENGTH = 1024
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+@-]*$")
# Signed URLs expire on a minute boundary so that repeated views of one job hand out the same
# URL, which lets browsers cache the image.
_EXPIRY_GRANULARITY_S = 60
# Upload parts live in a hidden folder of the root: no blob key can name it (validate_key).
_MULTIPART_DIR = ".multipart"
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_COPY_CHUNK = 8 * 1024 * 1024
_ASSEMBLY = "data"
_MARKER_MAX_BYTES = 256


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative blob key; raise ValueError saying why not."""
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"blob key is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError("blob key must be a relative path with / separators")
    for segment in key.split("/"):
        if not _SEGMENT_RE.match(segment):
            raise ValueError(f"blob key segment {segment!r} is not allowed (letters, digits, ._=+@- only)")
    return key


def load_or_create_secret(path: str | Path) -> bytes:
    """The signing secret at ``path``, created (32 random bytes, mode 0600) on first use."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = bytes.fromhex(path.read_text().strip())
        if len(secret) < 32:
            raise ValueError(f"signing secret in {path} is too short; delete it to make a new one") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex())
    return secret


def sign(secret: bytes, key: str, expires: int) -> str:
    return hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


class FolderBlobStore:
    def __init__(self, root: str | Path, secret: bytes, url_prefix: str = "/v1/blobs/") -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._secret = secret
        self._url_prefix = url_prefix
        # Part writers in flight per upload handle, and the handles being completed: a part
        # being written keeps its upload from completing (one process serves local mode).
        self._writers_lock = threading.Lock()
        self._writers: dict[str, int] = {}
        self._closing: set[str] = set()
        # Each upload's sha256 follows its received prefix (upload_digest); parts that land
        # ahead of it are read back by one background thread, so no part PUT waits for that.
        self._digests: dict[str, RunningDigest] = {}
        self._digest_worker: ThreadPoolExecutor | None = None

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        # Belt and braces after validate_key: symlinks or odd segments must not leave the root.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError("blob key escapes the blob folder")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}-{path.name}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes the stream
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def signed_url(self, key: str, expires_in: int) -> str:
        validate_key(key)
        deadline = int(time.time()) + int(expires_in)
        expires = -(-deadline // _EXPIRY_GRANULARITY_S) * _EXPIRY_GRANULARITY_S
        return f"{self._url_prefix}{quote(key)}?expires={expires}&sig={sign(self._secret, key, expires)}"

    def verify_signature(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        try:
            validate_key(key)
        except ValueError:
            return False
        expected = sign(self._secret, key, int(expires))
        if not hmac.compare_digest(expected.encode(), (signature or "").encode("utf-8", "replace")):
            return False
        return (time.time() if now is None else now) < int(expires)

    # -- multipart uploads (model uploads; the API serves the signed part URLs) ----------------
    #
    # One upload is a folder `.multipart/<handle>/` holding `key` (where it goes), `data` (the
    # object being assembled: every part is written at its own offset, so completing is a rename,
    # not a second copy of gigabytes) and one small marker file per part received (`<n>`: its size
    # and ETag). A marker is written only after the whole part is on disk, and removed when the
    # part is sent again, so "received" always means "these bytes are in `data`". The ETag is a
    # random token per received part, not an MD5: the sha256 of the whole object checked at
    # completion is the integrity check, and MD5 over every byte was the receiver's largest cost.

    def _parts_dir(self, handle: str) -> Path:
        if not isinstance(handle, str) or not _HANDLE_RE.match(handle):
            raise KeyError(handle)
        return self.root / _MULTIPART_DIR / handle

    def start_multipart(self, key: str, upload_id: str) -> str:
        validate_key(key)
        directory = self._parts_dir(upload_id)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "key").write_text(key)
        return upload_id

    def part_url(self, key: str, handle: str, number: int, expires_in: int) -> str:
        self._parts_dir(handle)
        expires = int(time.time()) + int(expires_in)
        signature = sign(self._secret, f"uploads/{handle}/parts/{int(number)}", expires)
        return f"/v1/uploads/{handle}/parts/{int(number)}?expires={expires}&signature={signature}"

    def verify_part_signature(self, handle: str, number: int, expires: int, signature: str) -> bool:
        expected = sign(self._secret, f"uploads/{handle}/parts/{int(number)}", int(expires))
        if not hmac.compare_digest(expected.encode(), (signature or "").encode("utf-8", "replace")):
            return False
        return time.time() < int(expires)

    def open_part_sink(self, handle: str, number: int, offset: int) -> _PartSink:
        directory = self._parts_dir(handle)
        with self._writers_lock:
            if handle in self._closing or not (directory / "key").is_file():
                raise KeyError(handle)
            digest = self._digests.setdefault(handle, RunningDigest())
            # the first part written makes the assembly file (also for an upload begun before
            # parts were assembled in place)
            (directory / _ASSEMBLY).touch(exist_ok=True)
            sink = _PartSink(directory, int(number), int(offset), digest, self)
            self._writers[handle] = self._writers.get(handle, 0) + 1
        return sink

    def _part_received(self, directory: Path, digest: RunningDigest, offset: int, size: int) -> None:
        assembly = directory / _ASSEMBLY

        def read_at(at: int, amount: int) -> bytes:
            with open(assembly, "rb") as fh:
                fh.seek(at)
                return fh.read(amount)

        with self._writers_lock:
            if self._digest_worker is None:
                self._digest_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdcloud-upload-digest")
            worker = self._digest_worker
        worker.submit(digest.received, offset, size, read_at)

    def _settled_digest(self, handle: str, size: int) -> str | None:
        """The upload's sha256 once the background reads queued so far are done (the worker
        runs them in order), or None when the digest cannot vouch for the bytes."""
        with self._writers_lock:
            digest, worker = self._digests.get(handle), self._digest_worker
        if digest is None:
            return None
        if worker is not None:
            worker.submit(lambda: None).result()
        return digest.result(size)

    def _writer_done(self, handle: str) -> None:
        with self._writers_lock:
            left = self._writers.get(handle, 1) - 1
            if left > 0:
                self._writers[handle] = left
            else:
                self._writers.pop(handle, None)

    def list_parts(self, key: str, handle: str) -> list[ReceivedPart]:
        directory = self._parts_dir(handle)
        if not directory.is_dir():
            return []
        found = []
        for path in directory.iterdir():
            if path.name.isdigit():
                try:
                    if path.stat().st_size > _MARKER_MAX_BYTES:
                        continue  # a part file of the earlier layout, not a marker: send it again
                    size, etag = path.read_text().split(" ", 1)
                    found.append(ReceivedPart(int(path.name), int(size), etag))
                except (OSError, ValueError):
                    continue  # removed meanwhile (the part is being sent again), or not ours
        return sorted(found, key=lambda p: p.number)

    def complete_multipart(self, key: str, handle: str, parts: list[ReceivedPart]) -> str | None:
        """Check ``parts`` (numbered 1..N, in order) against what was received, then rename the
        assembled object to ``key``; returns its sha256 when it was worked out on the way in.
        Refused while a part is still being written: its bytes would otherwise land in the
        finished object after it was verified."""
        path = self._path(key)
        directory = self._parts_dir(handle)
        received = {p.number: p for p in self.list_parts(key, handle)}
        for index, part in enumerate(parts, start=1):
            have = received.get(part.number)
            if part.number != index:
                raise ValueError(f"part {part.number} is out of order (expected part {index})")
            if have is None or have.size != part.size or (part.etag and part.etag.strip('"') != have.etag.strip('"')):
                raise ValueError(f"part {part.number} was not received as listed")
        with self._writers_lock:
            if self._writers.get(handle):
                raise Conflict("a part of this upload is still being received; complete it once every part PUT has answered")
            self._closing.add(handle)
        try:
            size = sum(p.size for p in parts)
            sha256 = self._settled_digest(handle, size)
            assembly = directory / _ASSEMBLY
            os.truncate(assembly, size)  # nothing past the last part
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(assembly, path)
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            with self._writers_lock:
                self._closing.discard(handle)
                self._digests.pop(handle, None)
        return sha256

    def abort_multipart(self, key: str, handle: str) -> None:
        with self._writers_lock:
            self._digests.pop(handle, None)
        try:
            shutil.rmtree(self._parts_dir(handle), ignore_errors=True)
        except KeyError:
            pass

    def sweep_stale_multipart(self, older_than_s: float, now: float | None = None) -> list[str]:
        """Free the parts of uploads nobody touched for ``older_than_s`` (the folder's answer to
        S3's AbortIncompleteMultipartUpload lifecycle rule); returns the handles removed. A part
        being written keeps its folder fresh, so a slow upload in progress is never swept."""
        base = self.root / _MULTIPART_DIR
        if not base.is_dir():
            return []
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = []
        for directory in base.iterdir():
            if not directory.is_dir() or not _HANDLE_RE.match(directory.name):
                continue
            try:
                newest = max([directory.stat().st_mtime, *(p.stat().st_mtime for p in directory.iterdir())])
            except OSError:
                continue  # completed or aborted meanwhile
            if newest < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
                with self._writers_lock:
                    self._digests.pop(directory.name, None)
                removed.append(directory.name)
        return removed

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}-{path.name}"
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, _COPY_CHUNK)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def move(self, source_key: str, key: str) -> None:
        source, path = self._path(source_key), self._path(key)
        if not source.is_file():
            raise KeyError(source_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)


class _PartSink:
    """Writes one part into the upload's assembly file at the part's offset.

    Opening it removes the part's marker (its bytes are about to change); commit writes the
    marker back with a fresh ETag once every byte is written. The file is unbuffered: each
    chunk the server received goes to the kernel as it is, without another copy here."""

    def __init__(self, directory: Path, number: int, offset: int, digest: RunningDigest, store: FolderBlobStore) -> None:
        self._directory = directory
        self._marker = directory / str(number)
        self._offset = offset
        self._digest = digest
        self._store = store
        self._fh = open(directory / _ASSEMBLY, "r+b", buffering=0)  # noqa: SIM115 - closed by commit or discard
        self._closed = False
        self._marker.unlink(missing_ok=True)
        digest.rewriting(offset)
        self._fh.seek(offset)
        self._written = 0

    def write(self, chunks: Iterable[bytes]) -> None:
        chunks = list(chunks)
        at = self._offset + self._written
        for chunk in chunks:
            view = memoryview(chunk)
            while view:  # a raw write may take less than it was given
                done = self._fh.write(view)
                view = view[done:]
                self._written += done
        self._digest.written(at, chunks)

    def commit(self) -> str:
        self._close()
        etag = f'"{secrets.token_hex(16)}"'
        tmp = self._marker.parent / f".tmp-{secrets.token_hex(8)}-{self._marker.name}"
        tmp.write_text(f"{self._written} {etag}")
        os.replace(tmp, self._marker)
        self._store._part_received(self._directory, self._digest, self._offset, self._written)
        return etag

    def discard(self) -> None:
        # The bytes written stay in the assembly file, unmarked: the part must be sent again.
        self._close()
        self._digest.discarded(self._offset, self._written)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._fh.close()
            self._store._writer_done(self._directory.name)
