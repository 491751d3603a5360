import os
import stat

import pytest

from middleware.adapters.fs_blobs import FolderBlobStore, load_or_create_secret, validate_key


def test_secret_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "data" / "blob-signing-key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_short_secret_file_is_refused(tmp_path):
    path = tmp_path / "key"
    path.write_text("abcd")
    with pytest.raises(ValueError, match="too short"):
        load_or_create_secret(path)


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = FolderBlobStore(tmp_path / "blobs", b"k" * 32)
    store.put_bytes("jobs/1/result.json", b"{}")
    store.put_bytes("jobs/1/result.json", b'{"a": 1}')
    files = sorted(p.name for p in (tmp_path / "blobs" / "jobs" / "1").iterdir())
    assert files == ["result.json"]
    assert store.get_bytes("jobs/1/result.json") == b'{"a": 1}'


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    store = FolderBlobStore(tmp_path / "blobs", b"k" * 32)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    os.symlink(outside, tmp_path / "blobs" / "link")
    with pytest.raises(ValueError, match="escapes"):
        store.get_bytes("link/secret")


@pytest.mark.parametrize("key", [".hidden", "jobs/.tmp-x", "a\\b", "a\x00b", "x" * 1025, "jobs/ü.png"])
def test_odd_keys_are_refused(key):
    with pytest.raises(ValueError):
        validate_key(key)


def test_signed_urls_expire_on_a_minute_boundary(tmp_path):
    store = FolderBlobStore(tmp_path / "blobs", b"k" * 32)
    first = store.signed_url("jobs/1/images/0.png", 3600)
    assert first.startswith("/v1/blobs/jobs/1/images/0.png?expires=")
    expires = int(first.split("expires=")[1].split("&")[0])
    assert expires % 60 == 0


def test_parts_of_an_abandoned_upload_are_freed_and_a_fresh_one_is_kept(tmp_path):
    import os
    import time

    from middleware.adapters.fs_blobs import FolderBlobStore

    store = FolderBlobStore(tmp_path, b"k" * 32)
    for handle in ("upload_old_1", "upload_new_1"):
        store.start_multipart("models/" + "a" * 64, handle)
        sink = store.open_part_sink(handle, 1, 0)
        sink.write([b"part bytes"])
        sink.commit()
    old_dir = tmp_path / ".multipart" / "upload_old_1"
    stale = time.time() - 3 * 24 * 3600
    for path in [old_dir, *old_dir.iterdir()]:
        os.utime(path, (stale, stale))

    assert store.sweep_stale_multipart(2 * 24 * 3600) == ["upload_old_1"]
    assert not old_dir.exists()
    assert [p.number for p in store.list_parts("models/" + "a" * 64, "upload_new_1")] == [1]
    assert store.sweep_stale_multipart(2 * 24 * 3600) == []


def _multipart_store(tmp_path, handle="upload_abc_1"):
    store = FolderBlobStore(tmp_path / "blobs", b"k" * 32)
    key = "models/" + "b" * 64
    store.start_multipart(key, handle)
    return store, key, handle


def _put(store, handle, number, offset, body, chunk=4096):
    sink = store.open_part_sink(handle, number, offset)
    sink.write([body[i : i + chunk] for i in range(0, len(body), chunk)])
    return sink.commit()


def test_parts_in_any_order_assemble_in_place_and_the_sha256_comes_back(tmp_path):
    import hashlib
    import os

    from middleware.ports import ReceivedPart

    store, key, handle = _multipart_store(tmp_path)
    data = os.urandom(3 * 10_000 + 77)
    spans = [(1, 0, 10_000), (2, 10_000, 10_000), (3, 20_000, 10_000), (4, 30_000, 77)]
    etags = {}
    for number, offset, size in (spans[2], spans[0], spans[3], spans[1]):
        etags[number] = _put(store, handle, number, offset, data[offset : offset + size])
    listed = store.list_parts(key, handle)
    assert [(p.number, p.size, p.etag) for p in listed] == [(n, s, etags[n]) for n, _, s in spans]
    assert len(set(etags.values())) == 4  # a token per received part, not a content hash

    sha256 = store.complete_multipart(key, handle, [ReceivedPart(n, s, etags[n]) for n, _, s in spans])

    assert store.get_bytes(key) == data
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "blobs" / ".multipart" / handle).exists()


def test_a_part_sent_again_after_the_prefix_passed_it_leaves_the_hash_to_the_library(tmp_path):
    from middleware.ports import ReceivedPart

    store, key, handle = _multipart_store(tmp_path)
    _put(store, handle, 1, 0, b"a" * 100)
    etag = _put(store, handle, 1, 0, b"a" * 100)  # a retry whose first answer was lost
    assert store.complete_multipart(key, handle, [ReceivedPart(1, 100, etag)]) is None
    assert store.get_bytes(key) == b"a" * 100


def test_a_part_being_written_is_unlisted_and_holds_completion_off(tmp_path):
    from middleware.domain.errors import Conflict
    from middleware.ports import ReceivedPart

    store, key, handle = _multipart_store(tmp_path)
    etag = _put(store, handle, 1, 0, b"x" * 50)
    again = store.open_part_sink(handle, 1, 0)  # sent again: no longer counts as received
    assert store.list_parts(key, handle) == []
    with pytest.raises(ValueError, match="not received as listed"):
        store.complete_multipart(key, handle, [ReceivedPart(1, 50, etag)])
    late = store.open_part_sink(handle, 2, 50)  # a PUT still in flight (a part not asked for)
    again.write([b"x" * 50])
    etag = again.commit()
    with pytest.raises(Conflict, match="still being received"):
        store.complete_multipart(key, handle, [ReceivedPart(1, 50, etag)])
    late.discard()
    store.complete_multipart(key, handle, [ReceivedPart(1, 50, etag)])
    with pytest.raises(KeyError):  # completed: a late PUT cannot reach the finished object
        store.open_part_sink(handle, 1, 0)
    assert store.get_bytes(key) == b"x" * 50


def test_parts_listed_out_of_order_or_with_a_stale_etag_are_refused(tmp_path):
    from middleware.ports import ReceivedPart

    store, key, handle = _multipart_store(tmp_path)
    first = _put(store, handle, 1, 0, b"1" * 10)
    second = _put(store, handle, 2, 10, b"2" * 10)
    with pytest.raises(ValueError, match="out of order"):
        store.complete_multipart(key, handle, [ReceivedPart(2, 10, second), ReceivedPart(1, 10, first)])
    with pytest.raises(ValueError, match="not received as listed"):
        store.complete_multipart(key, handle, [ReceivedPart(1, 10, '"stale"'), ReceivedPart(2, 10, second)])
    assert not store.exists(key)


def test_a_discarded_part_is_not_listed(tmp_path):
    store, key, handle = _multipart_store(tmp_path)
    sink = store.open_part_sink(handle, 1, 0)
    sink.write([b"half"])
    sink.discard()
    assert store.list_parts(key, handle) == []


def test_an_upload_begun_in_the_earlier_layout_takes_its_parts_again(tmp_path):
    """Parts used to be whole files `<n>` (+ `<n>.etag`) with no assembly file."""
    from middleware.ports import ReceivedPart

    store, key, handle = _multipart_store(tmp_path)
    directory = tmp_path / "blobs" / ".multipart" / handle
    assert not (directory / "data").exists()  # the earlier layout had no assembly file
    (directory / "1").write_bytes(b"p" * 1000)
    (directory / "1.etag").write_text('"md5"')
    assert store.list_parts(key, handle) == []
    etag = _put(store, handle, 1, 0, b"q" * 1000)
    store.complete_multipart(key, handle, [ReceivedPart(1, 1000, etag)])
    assert store.get_bytes(key) == b"q" * 1000
