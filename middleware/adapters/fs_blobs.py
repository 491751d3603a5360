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
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

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

    def open_part_sink(self, handle: str, number: int) -> _PartSink:
        directory = self._parts_dir(handle)
        if not (directory / "key").is_file():
            raise KeyError(handle)
        return _PartSink(directory, int(number))

    def list_parts(self, key: str, handle: str) -> list[ReceivedPart]:
        directory = self._parts_dir(handle)
        if not directory.is_dir():
            return []
        found = []
        for path in directory.iterdir():
            if path.name.isdigit():
                etag_file = directory / f"{path.name}.etag"
                etag = etag_file.read_text() if etag_file.is_file() else ""
                found.append(ReceivedPart(int(path.name), path.stat().st_size, etag))
        return sorted(found, key=lambda p: p.number)

    def complete_multipart(self, key: str, handle: str, parts: list[ReceivedPart]) -> None:
        """Concatenate the parts (streaming) into a temp file beside ``key``, then rename it."""
        path = self._path(key)
        directory = self._parts_dir(handle)
        received = {p.number: p for p in self.list_parts(key, handle)}
        for part in parts:
            have = received.get(part.number)
            if have is None or have.size != part.size or (part.etag and part.etag.strip('"') != have.etag.strip('"')):
                raise ValueError(f"part {part.number} was not received as listed")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}-{path.name}"
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(directory / str(part.number), "rb") as src:
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        shutil.rmtree(directory, ignore_errors=True)

    def abort_multipart(self, key: str, handle: str) -> None:
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
    """Writes one part to a temp file, hashing it (MD5, S3's part ETag) as it comes."""

    def __init__(self, directory: Path, number: int) -> None:
        self._final = directory / str(number)
        self._tmp = directory / f".tmp-{secrets.token_hex(8)}-{number}"
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed by commit or discard
        self._md5 = hashlib.md5(usedforsecurity=False)

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self._md5.update(chunk)

    def commit(self) -> str:
        self._fh.close()
        etag = f'"{self._md5.hexdigest()}"'
        (self._final.parent / f"{self._final.name}.etag").write_text(etag)
        os.replace(self._tmp, self._final)
        return etag

    def discard(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)
