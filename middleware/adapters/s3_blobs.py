"""BlobStore on S3 (AWS mode). The bucket is defined in ``middleware/template.yaml``.

Keys are those of DESIGN §4 (``jobs/<id>/...``, ``models/<sha256>``, ...), validated with the same
rules as the folder store before any request. Objects at or above ``multipart_threshold`` bytes go
up in parts of ``part_size`` bytes (S3 needs at least 5 MiB for every part but the last); an
upload that fails half way is aborted, and the bucket's lifecycle rule sweeps any left over.

URLs are SigV4 presigned by boto3 (``generate_presigned_url``): S3 itself checks them, so
``verify_signature`` (the API's own blob route, for stores that serve their bytes through the
middleware) never accepts anything here. The client must sign with SigV4 (``s3v4``): bootstrap
builds it so, and any other client is refused at construction (botocore's default presigns
SigV2 URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from middleware.adapters.fs_blobs import validate_key
from middleware.ports import ReceivedPart

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last
MAX_PARTS = 10_000
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's longest validity
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class Part:
    number: int  # 1-based, as S3 numbers them
    offset: int
    length: int


def plan_parts(size: int, part_size: int) -> list[Part]:
    """How an object of ``size`` bytes is cut into parts of ``part_size`` (the last may be shorter)."""
    if part_size < MIN_PART_BYTES:
        raise ValueError(f"multipart part size must be at least {MIN_PART_BYTES} bytes (S3's minimum)")
    parts = [
        Part(n + 1, offset, min(part_size, size - offset))
        for n, offset in enumerate(range(0, max(size, 1), part_size))
    ]
    if len(parts) > MAX_PARTS:
        raise ValueError(f"{size} bytes in {part_size}-byte parts needs more than {MAX_PARTS} parts")
    return parts


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _check_expiry(expires_in: int) -> int:
    expires_in = int(expires_in)
    if not 1 <= expires_in <= MAX_PRESIGN_S:
        raise ValueError(f"a presigned URL lives 1 to {MAX_PRESIGN_S} seconds (got {expires_in})")
    return expires_in


class S3BlobStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 16 * 1024 * 1024,
    ) -> None:
        # botocore presigns SigV2 URLs unless the client was built with an explicit s3v4 (its
        # config reads "s3v4" either way), so ask for one URL and look (local work, no request).
        probe = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "probe"}, ExpiresIn=60)
        if "X-Amz-Algorithm=AWS4-HMAC-SHA256" not in probe:
            raise ValueError("the S3 client must sign with SigV4: build it with Config(signature_version='s3v4')")
        plan_parts(0, part_size)  # validates part_size
        if multipart_threshold < part_size:
            raise ValueError("the multipart threshold must be at least one part")
        self._s3 = client
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    # -- the BlobStore port --------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        validate_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        if len(data) < self.multipart_threshold:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
            return
        self._put_multipart(key, data, extra)

    def _put_multipart(self, key: str, data: bytes, extra: dict[str, str]) -> None:
        parts = plan_parts(len(data), self.part_size)
        upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)["UploadId"]
        try:
            done = []
            view = memoryview(data)
            for part in parts:
                out = self._s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=part.number,
                    Body=bytes(view[part.offset : part.offset + part.length]),
                )
                done.append({"PartNumber": part.number, "ETag": out["ETag"]})
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            try:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass  # the lifecycle rule aborts what we could not
            raise

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> BinaryIO:
        validate_key(key)
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        validate_key(key)
        self._s3.delete_object(Bucket=self.bucket, Key=key)  # S3 answers 204 for a missing key too

    def signed_url(self, key: str, expires_in: int) -> str:
        """A presigned GET URL (SigV4) valid for ``expires_in`` seconds."""
        validate_key(key)
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=_check_expiry(expires_in)
        )

    def verify_signature(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        return False  # S3 checks its own URLs; the middleware serves no bytes from this store

    # -- uploads straight to S3 (model uploads, datasets: a later slice's API) ------------------

    def presigned_put_url(self, key: str, expires_in: int, content_type: str | None = None) -> str:
        """A presigned PUT URL; with ``content_type`` the uploader must send that Content-Type."""
        validate_key(key)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        return self._s3.generate_presigned_url("put_object", Params=params, ExpiresIn=_check_expiry(expires_in))

    def start_multipart_upload(self, key: str, size: int, expires_in: int) -> tuple[str, list[str]]:
        """Start a multipart upload of ``size`` bytes; returns its upload id and one presigned PUT
        URL per part (cut by ``plan_parts``). The uploader PUTs each part, keeps each answer's
        ETag (the bucket's CORS exposes it) and calls ``complete_multipart_upload``."""
        validate_key(key)
        expires_in = _check_expiry(expires_in)
        parts = plan_parts(size, self.part_size)
        upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        urls = [
            self._s3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": p.number},
                ExpiresIn=expires_in,
            )
            for p in parts
        ]
        return upload_id, urls

    def complete_multipart_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        validate_key(key)
        self._s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
        )

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        validate_key(key)
        self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- the MultipartBlobs port (model uploads: the uploader PUTs presigned parts) --------------

    def start_multipart(self, key: str, upload_id: str) -> str:
        validate_key(key)
        return self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

    def part_url(self, key: str, handle: str, number: int, expires_in: int) -> str:
        validate_key(key)
        return self._s3.generate_presigned_url(
            "upload_part",
            Params={"Bucket": self.bucket, "Key": key, "UploadId": handle, "PartNumber": int(number)},
            ExpiresIn=_check_expiry(expires_in),
        )

    def list_parts(self, key: str, handle: str) -> list[ReceivedPart]:
        validate_key(key)
        found: list[ReceivedPart] = []
        marker = 0
        while True:
            try:
                page = self._s3.list_parts(Bucket=self.bucket, Key=key, UploadId=handle, PartNumberMarker=marker)
            except ClientError as exc:
                if _code(exc) in {"NoSuchUpload", *_MISSING}:
                    return []
                raise
            found += [ReceivedPart(p["PartNumber"], p["Size"], p["ETag"]) for p in page.get("Parts", [])]
            if not page.get("IsTruncated"):
                return found
            marker = int(page["NextPartNumberMarker"])

    def complete_multipart(self, key: str, handle: str, parts: list[ReceivedPart]) -> str | None:
        validate_key(key)
        self._s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=handle,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
        )
        return None  # S3 does not hash the object for us: the library reads it back

    def abort_multipart(self, key: str, handle: str) -> None:
        validate_key(key)
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=handle)
        except ClientError as exc:
            if _code(exc) not in {"NoSuchUpload", *_MISSING}:
                raise

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """boto3's managed upload: parts of ``part_size`` as the stream yields them."""
        from boto3.s3.transfer import TransferConfig

        validate_key(key)
        config = TransferConfig(multipart_threshold=self.multipart_threshold, multipart_chunksize=self.part_size)
        self._s3.upload_fileobj(stream, self.bucket, key, Config=config)

    def move(self, source_key: str, key: str) -> None:
        """A server-side copy (managed: multipart copy above 5 GB), then the source is deleted."""
        validate_key(source_key)
        validate_key(key)
        self._s3.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, key)
        self._s3.delete_object(Bucket=self.bucket, Key=source_key)
