"""Access to stored blobs through signed, expiring URLs."""

from __future__ import annotations

from typing import BinaryIO

from middleware.domain.errors import Forbidden, NotFound
from middleware.ports import BlobStore


class BlobAccess:
    def __init__(self, blobs: BlobStore, url_ttl_s: int = 3600) -> None:
        self._blobs = blobs
        self.url_ttl_s = url_ttl_s

    def url_for(self, key: str) -> str:
        return self._blobs.signed_url(key, self.url_ttl_s)

    def open_signed(self, key: str, expires: int, signature: str) -> BinaryIO:
        # Bad signature and expiry read the same to the caller: neither reveals whether the
        # blob exists.
        if not self._blobs.verify_signature(key, expires, signature):
            raise Forbidden("this link is invalid or has expired; reload the job to get a fresh one")
        try:
            return self._blobs.open(key)
        except (KeyError, ValueError):
            raise NotFound("no such blob") from None
