"""The model library's rules: names, types, formats, upload part plans and the upload states.

Pure: no I/O. A model's bytes are stored once per content at ``models/<sha256>``; its name, type,
owner and visibility are metadata (a record). Uploads go in parts of 64-128 MiB (S3 multipart:
at most 10,000 parts, 5 MiB minimum for every part but the last).
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, replace
from typing import Any

from middleware.domain.errors import FieldError, IdempotencyMismatch, InvalidInput
from middleware.domain.safetensors_header import MAX_HEADER_BYTES

MODEL_TYPES = ("checkpoint", "lora", "embedding", "vae", "controlnet", "upscaler")
VISIBILITIES = ("private", "public")
MAX_NAME_LENGTH = 255
MIB = 1024 * 1024
MIN_PART_BYTES = 64 * MIB  # the production floor; tests pass a smaller part size explicitly
MAX_PART_BYTES = 128 * MIB
MAX_PARTS = 10_000
SAFETENSORS_SUFFIXES = (".safetensors",)
# Pickle files can run code when loaded: stored, but the engine refuses them unless the
# operator opted in (a container setting).
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

UPLOADING, COMPLETE, FAILED, ABORTED = "uploading", "complete", "failed", "aborted"
# Assembled, its sha256 being checked elsewhere (AWS: the library function), so no part is taken.
VERIFYING = "verifying"
_UPLOAD_MOVES = {UPLOADING: {VERIFYING, COMPLETE, FAILED, ABORTED}, VERIFYING: {COMPLETE, FAILED}}
IMPORTING = "importing"
_IMPORT_MOVES = {IMPORTING: {COMPLETE, FAILED}}


def model_key(sha256: str) -> str:
    """The blob key of a model's bytes (content addressing)."""
    return f"models/{sha256}"


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a model, or None when it can."""
    if not isinstance(name, str) or not name:
        return "a model name is a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"a model name has at most {MAX_NAME_LENGTH} characters"
    if "/" in name or "\\" in name:
        return "a model name cannot contain / or \\ (it is a file name, not a path)"
    if name in (".", "..") or ".." in name:
        return "a model name cannot contain '..'"
    if _CONTROL.search(name):
        return "a model name cannot contain control characters"
    if name != name.strip():
        return "a model name cannot start or end with spaces"
    return None


def format_of(name: str) -> str | None:
    """``safetensors`` or ``pickle`` by the file name's extension; None when neither."""
    lower = name.lower()
    if lower.endswith(SAFETENSORS_SUFFIXES):
        return "safetensors"
    if lower.endswith(PICKLE_SUFFIXES):
        return "pickle"
    return None


def sha256_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not _SHA256.match(value):
        return "sha256 must be 64 lowercase hex digits"
    return None


def validate_declaration(
    name: Any, type: Any, size: Any, sha256: Any, visibility: Any, *, max_bytes: int
) -> str:
    """Check a declared model; returns its format. Raises InvalidInput naming every bad field."""
    errors: list[FieldError] = []
    if (problem := name_problem(name)) is not None:
        errors.append(FieldError("name", problem))
    elif format_of(name) is None:
        allowed = ", ".join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)
        errors.append(FieldError("name", f"the file name must end with one of {allowed}"))
    if type not in MODEL_TYPES:
        errors.append(FieldError("type", f"type must be one of {', '.join(MODEL_TYPES)}"))
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        errors.append(FieldError("size", "size is the file's length in bytes, at least 1"))
    elif size > max_bytes:
        errors.append(FieldError("size", f"the file is larger than this library's limit of {max_bytes} bytes"))
    if (problem := sha256_problem(sha256)) is not None:
        errors.append(FieldError("sha256", problem))
    if visibility not in VISIBILITIES:
        errors.append(FieldError("visibility", "visibility is private or public"))
    if errors:
        raise InvalidInput(errors)
    return format_of(name) or "safetensors"


@dataclass(frozen=True)
class PlannedPart:
    number: int  # 1-based, as S3 numbers them
    offset: int
    size: int


def part_size_for(size: int, part_bytes: int = MIN_PART_BYTES) -> int:
    """The part size of an upload of ``size`` bytes: ``part_bytes``, raised (up to 128 MiB, in
    whole MiB) when the file needs more than 10,000 parts; one part for a smaller file."""
    if part_bytes <= 0:
        raise ValueError("the part size must be positive")
    chosen = part_bytes
    if -(-size // chosen) > MAX_PARTS:
        chosen = -(-size // MAX_PARTS)
        chosen = -(-chosen // MIB) * MIB
        if chosen > MAX_PART_BYTES:
            raise InvalidInput(
                [FieldError("size", f"a file this large needs parts over {MAX_PART_BYTES} bytes; the limit is "
                                    f"{MAX_PARTS} parts of at most {MAX_PART_BYTES} bytes")]
            )
    return min(chosen, max(size, 1))


def plan_parts(size: int, part_size: int) -> list[PlannedPart]:
    """The parts of a ``size``-byte file: ``part_size`` bytes each, the last is the rest."""
    if size <= 0 or part_size <= 0:
        raise ValueError("size and part size must be positive")
    parts = [PlannedPart(n + 1, off, min(part_size, size - off)) for n, off in enumerate(range(0, size, part_size))]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"{size} bytes in {part_size}-byte parts needs more than {MAX_PARTS} parts")
    return parts


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    type: str
    size: int
    sha256: str
    owner: str
    visibility: str
    created_at: int
    format: str

    @property
    def uri(self) -> str:
        return model_key(self.sha256)

    def visible_to(self, user: str, is_admin: bool = False) -> bool:
        return is_admin or self.owner == user or self.visibility == "public"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "sha256": self.sha256,
            "owner": self.owner,
            "visibility": self.visibility,
            "created_at": self.created_at,
            "format": self.format,
            "uri": self.uri,
        }


@dataclass(frozen=True)
class Upload:
    id: str
    owner: str
    name: str
    type: str
    size: int
    sha256: str
    visibility: str
    format: str
    part_size: int
    status: str
    created_at: int
    expires_at: int
    store_handle: str = ""  # the blob store's multipart id (S3 UploadId)
    idempotency_key: str | None = None
    model_id: str | None = None
    error: str | None = None
    verify_started_at: int = 0  # when the current verification was queued (0: not queued)

    @property
    def key(self) -> str:
        return model_key(self.sha256)

    @property
    def parts(self) -> list[PlannedPart]:
        return plan_parts(self.size, self.part_size)

    def part(self, number: int) -> PlannedPart | None:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            return None
        parts = self.parts
        return parts[number - 1] if number <= len(parts) else None

    def moved_to(self, status: str, **changes: Any) -> Upload:
        """This upload in ``status``; raises ValueError for a move the state machine forbids."""
        if status not in _UPLOAD_MOVES.get(self.status, set()):
            raise ValueError(f"upload {self.id} is {self.status}; it cannot become {status}")
        return replace(self, status=status, **changes)


@dataclass(frozen=True)
class ModelImport:
    id: str
    owner: str
    url: str  # without query string or credentials: it is shown back to the caller
    name: str
    type: str
    visibility: str
    format: str
    status: str
    created_at: int
    expected_sha256: str | None = None
    bytes: int = 0
    model_id: str | None = None
    error: str | None = None
    updated_at: int = 0  # the last progress report (0: none yet)

    def moved_to(self, status: str, **changes: Any) -> ModelImport:
        if status not in _IMPORT_MOVES.get(self.status, set()):
            raise ValueError(f"import {self.id} is {self.status}; it cannot become {status}")
        return replace(self, status=status, **changes)


class UploadRejected(IdempotencyMismatch):
    """The uploaded bytes are not what was declared, or not a valid file of their format (422).

    A subclass of the API's other 422 error, so that it maps to 422 without a new mapping."""

    code = "upload_rejected"


def import_url_problem(url: Any, *, allow_http: bool = False) -> str | None:
    """Why ``url`` cannot be imported from (scheme rules only; hosts are checked at connect)."""
    if not isinstance(url, str) or not url or len(url) > 4096:
        return "url must be a non-empty string of at most 4096 characters"
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    allowed = ("https", "s3", "http") if allow_http else ("https", "s3")
    if not sep or scheme not in allowed:
        return "only https:// and s3:// URLs can be imported"
    host = rest.split("/", 1)[0]
    if not host or "@" in host:
        return "the URL needs a host, without user:password@"
    if _CONTROL.search(url) or " " in url:
        return "the URL cannot contain spaces or control characters"
    return None


def shown_url(url: str) -> str:
    """``url`` without its query string (presigned URLs carry credentials there)."""
    return url.split("?", 1)[0].split("#", 1)[0]


class ContentDigest:
    """Hashes a stream as it passes (sha256 and size); for a safetensors file it also keeps the
    first ``8 + N`` bytes, N being the header length the first 8 bytes give (bounded)."""

    def __init__(self, safetensors: bool) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._head = bytearray()
        self._head_limit = 8 if safetensors else 0
        self._sized = not safetensors

    def feed(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        view = memoryview(chunk)
        while view and len(self._head) < self._head_limit:
            take = self._head_limit - len(self._head)
            self._head += view[:take]
            view = view[take:]
            if not self._sized and len(self._head) >= 8:
                self._sized = True
                (length,) = struct.unpack("<Q", bytes(self._head[:8]))
                self._head_limit = 8 + min(length, MAX_HEADER_BYTES)

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    @property
    def head_complete(self) -> bool:
        """Every byte of the head it keeps has passed (true at once when it keeps none)."""
        return self._sized and len(self._head) >= self._head_limit

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
