import sqlite3

import pytest

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_users import SqliteUserStore


@pytest.fixture
def users(tmp_path):
    db = SqliteDatabase(tmp_path / "db.sqlite")
    yield SqliteUserStore(db)
    db.close()


def test_keys_are_stored_only_as_hashes(users, tmp_path):
    users.create_user("ann", "artist")
    info, key = users.create_key("ann", "laptop")
    assert key.startswith(f"sdc_{info.key_id}_")
    rows = sqlite3.connect(tmp_path / "db.sqlite").execute("SELECT * FROM api_keys").fetchall()
    dumped = repr(rows)
    assert key not in dumped and key.split("_", 2)[2] not in dumped
    assert info.key_id in dumped


def test_authenticate(users):
    users.create_user("ann", "artist")
    users.create_user("bob", "admin")
    _, ann_key = users.create_key("ann")
    _, bob_key = users.create_key("bob")
    assert users.authenticate(ann_key).name == "ann"
    assert users.authenticate(bob_key).role == "admin"
    # Right key id, wrong secret; malformed keys; empty.
    tampered = ann_key[:-1] + ("A" if ann_key[-1] != "A" else "B")
    for bad in (tampered, "sdc_000000000000_" + "x" * 43, "garbage", "", ann_key + " "):
        assert users.authenticate(bad) is None


def test_users_are_unique_and_named_sensibly(users):
    users.create_user("ann", "artist")
    with pytest.raises(ValueError, match="already exists"):
        users.create_user("ann", "artist")
    with pytest.raises(ValueError, match="user name"):
        users.create_user("../etc", "artist")
    with pytest.raises(ValueError, match="does not exist"):
        users.create_key("nobody")
    assert users.count_users() == 1 and users.get_user("ann").role == "artist" and users.get_user("x") is None
