"""The BlobStore contract: every adapter passes the same tests."""

from __future__ import annotations

import time
import urllib.request
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


def serves_its_own_urls(blob_store) -> bool:
    """Stores whose bytes the API serves hand out relative, HMAC-signed URLs it verifies; S3
    hands out presigned URLs S3 itself verifies (their signing is unit-tested: moto checks none)."""
    return blob_store.signed_url("jobs/a/images/0.png", 60).startswith("/")


def parse_signed(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    key = unquote(parts.path.split("/v1/blobs/", 1)[1])
    return key, int(query["expires"][0]), query["sig"][0]


def test_put_get_exists_delete(blob_store):
    blob_store.put_bytes("jobs/a/images/0.png", b"\x89PNG...", "image/png")
    assert blob_store.exists("jobs/a/images/0.png")
    assert blob_store.get_bytes("jobs/a/images/0.png") == b"\x89PNG..."
    with blob_store.open("jobs/a/images/0.png") as stream:
        assert stream.read() == b"\x89PNG..."
    blob_store.put_bytes("jobs/a/images/0.png", b"new")
    assert blob_store.get_bytes("jobs/a/images/0.png") == b"new"
    blob_store.delete("jobs/a/images/0.png")
    assert not blob_store.exists("jobs/a/images/0.png")
    blob_store.delete("jobs/a/images/0.png")  # deleting twice is harmless


def test_missing_blob_raises_key_error(blob_store):
    with pytest.raises(KeyError):
        blob_store.get_bytes("jobs/none/result.json")
    with pytest.raises(KeyError):
        blob_store.open("jobs/none/result.json")


def test_empty_and_large_blobs(blob_store):
    blob_store.put_bytes("empty", b"")
    assert blob_store.get_bytes("empty") == b""
    big = bytes(range(256)) * 20_000
    blob_store.put_bytes("models/" + "a" * 64, big)
    assert blob_store.get_bytes("models/" + "a" * 64) == big


@pytest.mark.parametrize(
    "key", ["../escape", "jobs/../../etc/passwd", "/abs/path", "jobs//x", "jobs/./x", ""]
)
def test_path_traversal_keys_are_refused(blob_store, key):
    with pytest.raises(ValueError):
        blob_store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        blob_store.exists(key)


def test_signed_url_round_trip(blob_store):
    blob_store.put_bytes("jobs/a/images/0.png", b"img")
    url = blob_store.signed_url("jobs/a/images/0.png", 600)
    if not serves_its_own_urls(blob_store):
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback moto
            assert answer.read() == b"img"
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == ["600"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        # The API never serves such a store's bytes: its own signature check accepts nothing.
        assert not blob_store.verify_signature("jobs/a/images/0.png", int(time.time()) + 600, "0" * 64)
        return
    key, expires, sig = parse_signed(url)
    assert key == "jobs/a/images/0.png"
    assert expires >= time.time() + 600 - 1
    assert blob_store.verify_signature(key, expires, sig)


def test_tampered_signatures_are_refused(blob_store):
    if not serves_its_own_urls(blob_store):
        pytest.skip("S3 verifies presigned URLs itself (tests/unit/middleware/test_s3_presign.py)")
    key, expires, sig = parse_signed(blob_store.signed_url("jobs/a/images/0.png", 600))
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert not blob_store.verify_signature(key, expires, flipped)
    assert not blob_store.verify_signature("jobs/a/images/1.png", expires, sig)
    assert not blob_store.verify_signature(key, expires + 60, sig)
    assert not blob_store.verify_signature(key, expires, "")
    assert not blob_store.verify_signature(key, expires, "ü" * 64)
    assert not blob_store.verify_signature("../x", expires, sig)


def test_expired_signatures_are_refused(blob_store):
    if not serves_its_own_urls(blob_store):
        pytest.skip("S3 verifies presigned URLs itself (tests/unit/middleware/test_s3_presign.py)")
    key, expires, sig = parse_signed(blob_store.signed_url("jobs/a/images/0.png", 60))
    assert blob_store.verify_signature(key, expires, sig, now=expires - 1)
    assert not blob_store.verify_signature(key, expires, sig, now=expires)
    assert not blob_store.verify_signature(key, expires, sig, now=expires + 3600)
