import hashlib
import os

import pytest

from middleware.adapters.folder_models import FolderModelCatalog
from middleware.adapters.sqlite_db import SqliteDatabase


@pytest.fixture
def setup(tmp_path):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "a.safetensors").write_bytes(b"aaaa")
    (models / "sub" / "b.safetensors").write_bytes(b"bbbbbb")
    (models / "old.ckpt").write_bytes(b"pickle")
    (models / "notes.txt").write_text("not a model")
    (models / ".hidden.safetensors").write_bytes(b"h")
    db = SqliteDatabase(tmp_path / "db.sqlite")
    yield models, FolderModelCatalog(models, db)
    db.close()


def test_lists_checkpoints_with_hash_size_and_uri(setup):
    models, catalog = setup
    listed = {m.name: m for m in catalog.list()}
    assert sorted(listed) == ["a.safetensors", "old.ckpt", "sub/b.safetensors"]
    a = listed["a.safetensors"]
    assert a.type == "checkpoint" and a.size == 4
    assert a.sha256 == hashlib.sha256(b"aaaa").hexdigest()
    assert a.uri == (models / "a.safetensors").resolve().as_uri()
    assert catalog.list("lora") == [] and len(catalog.list("checkpoint")) == 3


def test_hash_is_cached_by_path_size_and_mtime(setup):
    models, catalog = setup
    path = models / "a.safetensors"
    first = catalog.get("a.safetensors").sha256
    st = path.stat()
    # Same size and mtime: the cached hash is used (the file is not read again).
    path.write_bytes(b"zzzz")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert catalog.get("a.safetensors").sha256 == first
    # A new mtime means a new file: hashed again.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert catalog.get("a.safetensors").sha256 == hashlib.sha256(b"zzzz").hexdigest()


@pytest.mark.parametrize(
    "name",
    ["../x.safetensors", "/etc/passwd", "sub/../a.safetensors", "notes.txt", "missing.safetensors", ""],
)
def test_get_refuses_names_outside_the_folder_or_not_checkpoints(setup, name):
    _models, catalog = setup
    assert catalog.get(name) is None


def test_get_subfolder_and_missing_dir(setup, tmp_path):
    _models, catalog = setup
    assert catalog.get("sub/b.safetensors").size == 6
    db = SqliteDatabase(tmp_path / "other.sqlite")
    assert FolderModelCatalog(tmp_path / "nope", db).list() == []
    db.close()
