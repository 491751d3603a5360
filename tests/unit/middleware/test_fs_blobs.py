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
        sink = store.open_part_sink(handle, 1)
        sink.write(b"part bytes")
        sink.commit()
    old_dir = tmp_path / ".multipart" / "upload_old_1"
    stale = time.time() - 3 * 24 * 3600
    for path in [old_dir, *old_dir.iterdir()]:
        os.utime(path, (stale, stale))

    assert store.sweep_stale_multipart(2 * 24 * 3600) == ["upload_old_1"]
    assert not old_dir.exists()
    assert [p.number for p in store.list_parts("models/" + "a" * 64, "upload_new_1")] == [1]
    assert store.sweep_stale_multipart(2 * 24 * 3600) == []
