"""The model library: uploads in parts, content addressing, records, import by URL (issue 9).

A model's bytes are stored once per content at ``models/<sha256>``; each record (name, type,
owner, visibility) points at them. Declaring a file whose sha256 is already stored completes at
once (zero bytes sent). Uploads go straight into the blob store in parts (local: signed URLs the
API serves; AWS: presigned S3 ``upload_part``); completing assembles them and verifies size,
sha256 and, for safetensors, the header by reading the object back as a stream.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, BinaryIO

from middleware.domain import model_library as rules
from middleware.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
)
from middleware.domain.model_library import ContentDigest, ModelImport, ModelRecord, Upload, UploadRejected
from middleware.domain.safetensors_header import HeaderError, validate_header
from middleware.ports import (
    BlobStore,
    ModelCatalog,
    ModelLibraryStore,
    ModelSource,
    MultipartBlobs,
    PartReceiver,
    PartSink,
    ReceivedPart,
    StoreConflict,
    User,
)

log = logging.getLogger(__name__)

GIB = 1024**3
OPERATOR = "operator"
_OPERATOR_PREFIX = "operator:"
_READ_CHUNK = 8 * 1024 * 1024
# Background work silent this long is taken for dead (a restart, or the library function's
# 15-minute Lambda limit): an import reports progress every 64 MiB; a verification gets queued again.
STALE_AFTER_S = 15 * 60

# (import_id, url): start ModelLibrary.run_import(import_id, url) where it may run for minutes.
ImportLauncher = Callable[[str, str], None]
# (upload_id): start ModelLibrary.run_verification(upload_id) where it may run for minutes.
UploadVerifier = Callable[[str], None]
MAX_LIST_LIMIT = 200


def _is_admin(user: User) -> bool:
    return user.role == "admin"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class _CappedReader:
    """A read-only stream over ``source`` that hashes what passes and stops past ``cap`` bytes."""

    def __init__(self, source: BinaryIO, digest: ContentDigest, cap: int, progress: Callable[[int], None]) -> None:
        self._source = source
        self._digest = digest
        self._cap = cap
        self._progress = progress
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(_READ_CHUNK if size is None or size < 0 else size)
        if chunk:
            self._digest.feed(chunk)
            if self._digest.size > self._cap:
                raise ValueError(f"the file is larger than this library's limit of {self._cap} bytes")
            if self._digest.size - self._reported >= 64 * 1024 * 1024:
                self._reported = self._digest.size
                self._progress(self._digest.size)
        return chunk

    def readable(self) -> bool:
        return True


class ModelLibrary:
    def __init__(
        self,
        store: ModelLibraryStore,
        blobs: BlobStore,
        multipart: MultipartBlobs,
        *,
        operator_catalog: ModelCatalog | None = None,
        receiver: PartReceiver | None = None,
        source: ModelSource | None = None,
        part_bytes: int = rules.MIN_PART_BYTES,
        url_ttl_s: int = 24 * 3600,
        max_bytes: int = 20 * GIB,
        allow_http_imports: bool = False,
        launcher: ImportLauncher | None = None,
        verifier: UploadVerifier | None = None,
        stale_after_s: int = STALE_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``launcher`` starts ``run_import`` for an import somewhere it may run for minutes:
        by default a thread of this process; in AWS the library function (a Lambda invocation).
        An import that reported no progress for ``stale_after_s`` (its process died, or ran
        past Lambda's 15 minutes) is shown as failed. ``verifier`` checks a completed upload's
        sha256 elsewhere (AWS: the library function); without one, completion checks it inline;
        one queued more than ``stale_after_s`` ago is queued again."""
        self._store = store
        self._blobs = blobs
        self._multipart = multipart
        self._operator = operator_catalog
        self._receiver = receiver
        self._source = source
        self.part_bytes = part_bytes
        self._url_ttl_s = url_ttl_s
        self.max_bytes = max_bytes
        self._allow_http = allow_http_imports
        self._launcher = launcher or self._thread
        self._verifier = verifier
        self._stale_after_s = stale_after_s
        self._clock = clock

    def _thread(self, import_id: str, url: str) -> None:
        threading.Thread(target=self.run_import, args=(import_id, url), name="sdcloud-model-import", daemon=True).start()

    # -- uploads --------------------------------------------------------------------------------

    def declare(
        self,
        user: User,
        name: Any,
        type: Any,
        size: Any,
        sha256: Any,
        visibility: Any = "private",
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Start an upload; (200, complete) when the bytes are already stored, else (201, plan)."""
        fmt = rules.validate_declaration(name, type, size, sha256, visibility, max_bytes=self.max_bytes)
        existing = self._store.find_model(user.name, type, name)
        if existing is not None:
            if existing.sha256 != sha256:
                raise Conflict(
                    f"you already have a {type} named {name!r} with other contents (sha256 "
                    f"{existing.sha256[:10]}...); delete it first or choose another name"
                )
            return 200, {"status": "complete", "upload_id": None, "model": existing.to_dict(), "parts": []}
        record = self._dedupe(user, name, type, size, sha256, visibility, fmt)
        if record is not None:
            return 200, {"status": "complete", "upload_id": None, "model": record.to_dict(), "parts": []}
        now = int(self._clock())
        upload_id = _new_id("upl")
        part_size = rules.part_size_for(size, self.part_bytes)
        handle = self._multipart.start_multipart(rules.model_key(sha256), upload_id)
        upload = Upload(
            id=upload_id, owner=user.name, name=name, type=type, size=size, sha256=sha256,
            visibility=visibility, format=fmt, part_size=part_size, status=rules.UPLOADING,
            created_at=now, expires_at=now + self._url_ttl_s, store_handle=handle,
            idempotency_key=idempotency_key,
        )
        stored, created = self._store.create_upload(upload)
        if not created:
            self._multipart.abort_multipart(upload.key, handle)
            same = (stored.name, stored.type, stored.size, stored.sha256) == (name, type, size, sha256)
            if not same:
                raise IdempotencyMismatch("this Idempotency-Key was used for another upload declaration")
            return 200, self._status_view(stored)
        return 201, self._status_view(stored)

    def _dedupe(
        self, user: User, name: str, type: str, size: int, sha256: str, visibility: str, fmt: str
    ) -> ModelRecord | None:
        """A new record over bytes already stored, or None when they are not."""
        others = self._store.models_with_sha256(sha256)
        if not others or not self._blobs.exists(rules.model_key(sha256)):
            return None
        if others[0].size != size:
            raise InvalidInput([FieldError("size", f"a file with this sha256 has {others[0].size} bytes, not {size}")])
        record = ModelRecord(
            id=_new_id("mdl"), name=name, type=type, size=size, sha256=sha256, owner=user.name,
            visibility=visibility, created_at=int(self._clock()), format=fmt,
        )
        try:
            self._store.create_model(record)
        except StoreConflict:
            found = self._store.find_model(user.name, type, name)
            if found is not None and found.sha256 == sha256:
                return found
            raise Conflict(f"you already have a {type} named {name!r}; delete it first or choose another name") from None
        return record

    def _own_upload(self, user: User, upload_id: str) -> Upload:
        upload = self._store.get_upload(upload_id)
        if upload is None or (upload.owner != user.name and not _is_admin(user)):
            raise NotFound(f"no upload {upload_id}")
        return upload

    def _status_view(self, upload: Upload) -> dict[str, Any]:
        view: dict[str, Any] = {
            "status": upload.status,
            "upload_id": upload.id,
            "part_size": upload.part_size,
            "parts": [],
            "received": [],
            "expires_at": upload.expires_at,
        }
        if upload.status == rules.UPLOADING:
            received = {p.number: p for p in self._multipart.list_parts(upload.key, upload.store_handle)}
            planned = upload.parts
            view["received"] = [
                {"number": p.number, "size": p.size, "etag": p.etag}
                for p in received.values()
                if upload.part(p.number) is not None and p.size == planned[p.number - 1].size
            ]
            done = {r["number"] for r in view["received"]}
            view["parts"] = [
                {
                    "number": p.number,
                    "size": p.size,
                    "url": self._multipart.part_url(upload.key, upload.store_handle, p.number, self._url_ttl_s),
                }
                for p in planned
                if p.number not in done
            ]
            view["expires_at"] = int(self._clock()) + self._url_ttl_s
        elif upload.status == rules.COMPLETE and upload.model_id:
            record = self._store.get_model(upload.model_id)
            if record is not None:
                view["model"] = record.to_dict()
        if upload.error:
            view["error"] = upload.error
        return view

    def upload_status(self, user: User, upload_id: str) -> dict[str, Any]:
        upload = self._own_upload(user, upload_id)
        if upload.status == rules.VERIFYING:
            upload = self._requeue_if_stale(upload)
        return self._status_view(upload)

    def part_sink(self, upload_id: str, number: int, expires: int, signature: str) -> tuple[PartSink, int]:
        """Where a signed part PUT writes to, and the exact size the part must have."""
        if self._receiver is None:
            raise NotFound("this deployment receives upload parts in its object store, not here")
        upload = self._store.get_upload(upload_id)
        if not self._receiver.verify_part_signature(upload_id, number, expires, signature) or upload is None:
            raise Forbidden("this part URL is invalid or has expired; ask GET /v1/models/uploads/{id} for fresh ones")
        if upload.status != rules.UPLOADING:
            raise Conflict(f"upload {upload_id} is {upload.status}; it takes no more parts")
        part = upload.part(number)
        if part is None:
            raise NotFound(f"upload {upload_id} has no part {number}")
        try:
            sink = self._receiver.open_part_sink(upload.store_handle, number, part.offset)
        except KeyError:
            raise Conflict(f"upload {upload_id} is being completed or was removed; it takes no more parts") from None
        return sink, part.size

    def complete(self, user: User, upload_id: str, parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Assemble and verify the upload: the model record (``complete``), or ``verifying``
        when the check runs elsewhere (the client then follows GET .../uploads/{id})."""
        upload = self._own_upload(user, upload_id)
        if upload.status == rules.COMPLETE:
            return self._status_view(upload)
        if upload.status == rules.VERIFYING:
            return self._status_view(self._requeue_if_stale(upload))
        if upload.status != rules.UPLOADING:
            raise Conflict(f"upload {upload_id} is {upload.status}; declare it again to start over")
        ready = self._received_parts(upload, parts or [])
        record = self._dedupe(user, upload.name, upload.type, upload.size, upload.sha256, upload.visibility, upload.format)
        if record is not None:
            # Someone stored the same bytes meanwhile: this upload's parts are not needed.
            self._multipart.abort_multipart(upload.key, upload.store_handle)
            return self._finish(upload, record)
        known_sha256 = self._multipart.complete_multipart(upload.key, upload.store_handle, ready)
        if known_sha256 is None and self._verifier is not None:
            verifying = upload.moved_to(rules.VERIFYING)
            if not self._store.update_upload(upload, verifying):
                return self._status_view(self._store.get_upload(upload.id) or upload)
            return self._status_view(self._requeue_if_stale(verifying))
        return self._verified(upload, known_sha256)

    def run_verification(self, upload_id: str) -> None:
        """Check an assembled upload's bytes and end it, complete or failed (the library
        function's work in AWS mode); an upload not being verified is left alone."""
        upload = self._store.get_upload(upload_id)
        if upload is None or upload.status != rules.VERIFYING:
            log.info("upload %s is %s: nothing to verify", upload_id, "unknown" if upload is None else upload.status)
            return
        try:
            self._verified(upload, None)
        except UploadRejected as exc:
            log.info("%s", exc)

    def _verified(self, upload: Upload, known_sha256: str | None) -> dict[str, Any]:
        problem = self._verify(upload.key, upload.size, upload.sha256, upload.format, known_sha256)
        if problem is not None:
            self._fail(upload, problem)
        return self._finish(upload, self._record_for(upload))

    def _finish(self, upload: Upload, record: ModelRecord) -> dict[str, Any]:
        self._store.update_upload(upload, upload.moved_to(rules.COMPLETE, model_id=record.id))
        return {"status": "complete", "upload_id": upload.id, "model": record.to_dict()}

    def _requeue_if_stale(self, upload: Upload) -> Upload:
        """Queue the verification of a verifying upload unless one was queued recently (a
        verification that died — a restart, Lambda's limit — is queued again)."""
        now = int(self._clock())
        if self._verifier is None or now - upload.verify_started_at <= self._stale_after_s:
            return upload
        queued = replace(upload, verify_started_at=now)
        if not self._store.update_upload(upload, queued):
            return self._store.get_upload(upload.id) or upload
        try:
            self._verifier(upload.id)
        except Exception as exc:  # noqa: BLE001 - the bytes are kept; the next look queues it again
            log.warning("the verification of upload %s could not be queued: %s", upload.id, exc)
            unqueued = replace(queued, verify_started_at=0)
            self._store.update_upload(queued, unqueued)
            return unqueued
        return queued

    def _received_parts(self, upload: Upload, claimed: list[dict[str, Any]]) -> list[ReceivedPart]:
        received = {p.number: p for p in self._multipart.list_parts(upload.key, upload.store_handle)}
        errors: list[FieldError] = []
        missing = [p.number for p in upload.parts if p.number not in received]
        if missing:
            shown = ", ".join(str(n) for n in missing[:20]) + (" ..." if len(missing) > 20 else "")
            errors.append(FieldError("parts", f"parts {shown} were not received; PUT them, then complete again"))
        for part in upload.parts:
            have = received.get(part.number)
            if have is not None and have.size != part.size:
                errors.append(FieldError(f"parts.{part.number}", f"part {part.number} has {have.size} bytes, not {part.size}; PUT it again"))
        for index, item in enumerate(claimed):
            number, etag = item.get("number"), item.get("etag")
            have = received.get(number) if isinstance(number, int) else None
            if etag and have is not None and have.etag and etag.strip('"') != have.etag.strip('"'):
                errors.append(FieldError(f"parts[{index}].etag", f"part {number} was stored with ETag {have.etag}, not {etag}"))
        if errors:
            raise InvalidInput(errors)
        return [received[p.number] for p in upload.parts]

    def _verify(self, key: str, size: int, sha256: str, fmt: str, known_sha256: str | None = None) -> str | None:
        """What is wrong with the object at ``key``, or None when it is what was declared.

        ``known_sha256`` is the digest the store worked out while the parts came in, over
        exactly ``size`` bytes (the folder store); then only a safetensors header is read back."""
        digest = ContentDigest(safetensors=fmt == "safetensors")
        with self._blobs.open(key) as stream:
            while (known_sha256 is None or not digest.head_complete) and (chunk := stream.read(_READ_CHUNK)):
                digest.feed(chunk)
        actual_size = digest.size if known_sha256 is None else size
        actual_sha256 = digest.hexdigest() if known_sha256 is None else known_sha256
        if actual_size != size:
            return f"the file has {actual_size} bytes, not the {size} declared"
        if actual_sha256 != sha256:
            return f"the file's sha256 is {actual_sha256}, not the {sha256} declared"
        if fmt == "safetensors":
            try:
                validate_header(digest.head, size)
            except HeaderError as exc:
                return f"not a valid safetensors file: {exc}"
        return None

    def _fail(self, upload: Upload, problem: str) -> None:
        # Nothing half-kept: the assembled object goes (unless another record owns those bytes).
        if not self._store.models_with_sha256(upload.sha256):
            self._blobs.delete(upload.key)
        self._multipart.abort_multipart(upload.key, upload.store_handle)
        self._store.update_upload(upload, upload.moved_to(rules.FAILED, error=problem))
        raise UploadRejected(f"upload {upload.id} failed: {problem}; nothing was kept")

    def _record_for(self, upload: Upload) -> ModelRecord:
        record = ModelRecord(
            id=_new_id("mdl"), name=upload.name, type=upload.type, size=upload.size, sha256=upload.sha256,
            owner=upload.owner, visibility=upload.visibility, created_at=int(self._clock()), format=upload.format,
        )
        try:
            self._store.create_model(record)
        except StoreConflict:
            found = self._store.find_model(upload.owner, upload.type, upload.name)
            if found is not None and found.sha256 == upload.sha256:
                return found
            raise Conflict(f"you already have a {upload.type} named {upload.name!r}") from None
        return record

    def abort(self, user: User, upload_id: str) -> None:
        upload = self._own_upload(user, upload_id)
        if upload.status in (rules.ABORTED, rules.FAILED):
            return
        if upload.status == rules.COMPLETE:
            raise Conflict(f"upload {upload_id} is complete; delete the model instead")
        self._multipart.abort_multipart(upload.key, upload.store_handle)
        self._store.update_upload(upload, upload.moved_to(rules.ABORTED))

    # -- records --------------------------------------------------------------------------------

    def _operator_records(self, type: str | None = None) -> list[dict[str, Any]]:
        if self._operator is None or type not in (None, "checkpoint"):
            return []
        return [
            {
                "id": f"{_OPERATOR_PREFIX}{m.name}", "name": m.name, "type": m.type, "size": m.size,
                "sha256": m.sha256, "owner": OPERATOR, "visibility": "public", "created_at": 0,
                "format": rules.format_of(m.name) or "safetensors", "uri": f"{_OPERATOR_PREFIX}{m.name}",
            }
            for m in self._operator.list(type)
        ]

    def list(
        self,
        user: User,
        *,
        type: str | None = None,
        visibility: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """The caller's models and public ones (an admin's: every one), newest first; the
        operator's folder checkpoints head the first page."""
        errors = []
        if type is not None and type not in rules.MODEL_TYPES:
            errors.append(FieldError("type", f"type is one of {', '.join(rules.MODEL_TYPES)}"))
        if visibility is not None and visibility not in rules.VISIBILITIES:
            errors.append(FieldError("visibility", "visibility is private or public"))
        if not 1 <= limit <= MAX_LIST_LIMIT:
            errors.append(FieldError("limit", f"limit is 1 to {MAX_LIST_LIMIT}"))
        if errors:
            raise InvalidInput(errors)
        items: list[dict[str, Any]] = []
        if cursor is None and owner in (None, OPERATOR) and visibility in (None, "public"):
            items = [r for r in self._operator_records(type) if not q or q.lower() in r["name"].lower()]
        try:
            records, next_cursor = self._store.list_models(
                None if _is_admin(user) else user.name,
                type=type, visibility=visibility, owner=owner, q=q, limit=limit, cursor=cursor,
            )
        except ValueError as exc:
            raise InvalidInput([FieldError("cursor", str(exc))]) from None
        items += [r.to_dict() for r in records]
        return {"items": items, "next_cursor": next_cursor}

    def _visible(self, user: User, model_id: str) -> ModelRecord:
        record = self._store.get_model(model_id)
        if record is None or not record.visible_to(user.name, _is_admin(user)):
            raise NotFound(f"no model {model_id}")
        return record

    def describe(self, user: User, model_id: str) -> dict[str, Any]:
        if model_id.startswith(_OPERATOR_PREFIX):
            found = [r for r in self._operator_records() if r["id"] == model_id]
            if not found:
                raise NotFound(f"no model {model_id}")
            return found[0]
        return self._visible(user, model_id).to_dict()

    def _mine(self, user: User, model_id: str) -> ModelRecord:
        if model_id.startswith(_OPERATOR_PREFIX):
            raise Forbidden("the operator's folder checkpoints are managed on the server, not through the API")
        record = self._visible(user, model_id)
        if record.owner != user.name and not _is_admin(user):
            raise Forbidden(f"model {model_id} belongs to {record.owner}; only they or an admin may change it")
        return record

    def delete(self, user: User, model_id: str) -> None:
        record = self._mine(user, model_id)
        self._store.delete_model(record.id)
        # Content is shared: the bytes go only with the last record that uses them.
        if not self._store.models_with_sha256(record.sha256):
            self._blobs.delete(record.uri)

    def set_visibility(self, user: User, model_id: str, visibility: Any) -> dict[str, Any]:
        if visibility not in rules.VISIBILITIES:
            raise InvalidInput([FieldError("visibility", "visibility is private or public")])
        record = self._mine(user, model_id)
        self._store.set_visibility(record.id, visibility)
        return replace(record, visibility=visibility).to_dict()

    # -- imports --------------------------------------------------------------------------------

    def start_import(
        self, user: User, url: Any, name: Any, type: Any, sha256: Any = None, visibility: Any = "private"
    ) -> dict[str, Any]:
        if self._source is None:
            raise NotFound(
                "this deployment does not import models from URLs (the AWS deployment cannot run a "
                "long download): download the file, then upload it with `python -m sdcloud.models upload PATH`"
            )
        errors = []
        if (problem := rules.import_url_problem(url, allow_http=self._allow_http)) is not None:
            errors.append(FieldError("url", problem))
        if sha256 is not None and (problem := rules.sha256_problem(sha256)) is not None:
            errors.append(FieldError("sha256", problem))
        try:
            fmt = rules.validate_declaration(name, type, 1, "0" * 64, visibility, max_bytes=self.max_bytes)
        except InvalidInput as exc:
            errors += exc.errors
            fmt = "safetensors"
        if errors:
            raise InvalidInput(errors)
        job = ModelImport(
            id=_new_id("imp"), owner=user.name, url=rules.shown_url(url), name=name, type=type,
            visibility=visibility, format=fmt, status=rules.IMPORTING, created_at=int(self._clock()),
            expected_sha256=sha256,
        )
        self._store.create_import(job)
        try:
            self._launcher(job.id, url)
        except Exception as exc:  # noqa: BLE001 - the import is ended with the reason, not left waiting
            failed = job.moved_to(rules.FAILED, error=f"the import could not be started: {exc}")
            self._store.update_import(failed)
            return {"import_id": failed.id, "status": failed.status, "error": failed.error}
        return {"import_id": job.id, "status": job.status}

    def import_status(self, user: User, import_id: str) -> dict[str, Any]:
        job = self._store.get_import(import_id)
        if job is None or (job.owner != user.name and not _is_admin(user)):
            raise NotFound(f"no import {import_id}")
        if job.status == rules.IMPORTING and self._clock() - max(job.created_at, job.updated_at) > self._stale_after_s:
            job = job.moved_to(rules.FAILED, error=(
                f"the import stopped reporting progress for over {self._stale_after_s // 60} minutes (the "
                "server restarted, or the download ran past its time limit); start it again"))
            self._store.update_import(job)
        view: dict[str, Any] = {"import_id": job.id, "status": job.status, "bytes": job.bytes, "url": job.url}
        if job.model_id and (record := self._store.get_model(job.model_id)) is not None:
            view["model"] = record.to_dict()
        if job.error:
            view["error"] = job.error
        return view

    def run_import(self, import_id: str, url: str) -> None:
        """Download, check and store the file of an import that is still running (a second
        delivery of the same import, or one already ended, does nothing)."""
        job = self._store.get_import(import_id)
        if job is None or job.status != rules.IMPORTING:
            log.info("import %s is %s: nothing to run", import_id, "unknown" if job is None else job.status)
            return
        self._run_import(job, url)

    def _run_import(self, job: ModelImport, url: str) -> None:
        staging = f"imports/{job.id}"
        try:
            record = self._import(job, url, job.owner, staging)
        except Exception as exc:  # noqa: BLE001 - every failure is reported on the import
            message = str(exc) if isinstance(exc, (ValueError, InvalidInput, Conflict)) else type(exc).__name__
            if not isinstance(exc, (ValueError, InvalidInput, Conflict)):
                log.exception("import %s failed", job.id)
            self._blobs.delete(staging)
            current = self._store.get_import(job.id) or job
            if current.status == rules.IMPORTING:
                self._store.update_import(current.moved_to(rules.FAILED, error=message))
            return
        current = self._store.get_import(job.id) or job
        if current.status != rules.IMPORTING:  # shown as stopped meanwhile; the model is kept
            log.warning("import %s finished after it was shown as %s; model %s is stored", job.id, current.status, record.id)
            return
        self._store.update_import(current.moved_to(rules.COMPLETE, model_id=record.id, bytes=record.size))

    def _import(self, job: ModelImport, url: str, owner: str, staging: str) -> ModelRecord:
        assert self._source is not None
        stream, length = self._source.open(url)
        if length is not None and length > self.max_bytes:
            stream.close()
            raise ValueError(f"the file has {length} bytes; this library's limit is {self.max_bytes}")
        digest = ContentDigest(safetensors=job.format == "safetensors")

        def progress(n: int) -> None:
            current = self._store.get_import(job.id)
            if current is None or current.status != rules.IMPORTING:  # shown as stopped meanwhile
                raise ValueError("the import was ended while it ran")
            self._store.update_import(replace(current, bytes=n, updated_at=int(self._clock())))

        with stream:
            self._multipart.put_stream(staging, _CappedReader(stream, digest, self.max_bytes, progress))
        sha = digest.hexdigest()
        if job.expected_sha256 and sha != job.expected_sha256:
            raise ValueError(f"the file's sha256 is {sha}, not the {job.expected_sha256} expected")
        if job.format == "safetensors":
            try:
                validate_header(digest.head, digest.size)
            except HeaderError as exc:
                raise ValueError(f"not a valid safetensors file: {exc}") from None
        if self._blobs.exists(rules.model_key(sha)):
            self._blobs.delete(staging)
        else:
            self._multipart.move(staging, rules.model_key(sha))
        existing = self._store.find_model(owner, job.type, job.name)
        if existing is not None and existing.sha256 == sha:
            return existing
        record = ModelRecord(
            id=_new_id("mdl"), name=job.name, type=job.type, size=digest.size, sha256=sha, owner=owner,
            visibility=job.visibility, created_at=int(self._clock()), format=job.format,
        )
        try:
            self._store.create_model(record)
        except StoreConflict:
            if not self._store.models_with_sha256(sha):
                self._blobs.delete(rules.model_key(sha))
            raise Conflict(f"you already have a {job.type} named {job.name!r}; delete it first") from None
        return record

