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
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

MAX_KEY_LENGTH = 1024
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+@-]*$")
# Signed URLs expire on a minute boundary so that repeated views of one job hand out the same
# URL, which lets browsers cache the image.
_EXPIRY_GRANULARITY_S = 60


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
