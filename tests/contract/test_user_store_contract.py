"""The UserStore / ApiKeyStore contract: every adapter passes the same tests."""

from __future__ import annotations

import pytest

from middleware.adapters.api_key_format import hash_key
from middleware.ports import ApiKeyStore, User, UserStore


def test_implements_both_ports(user_store):
    assert isinstance(user_store, UserStore) and isinstance(user_store, ApiKeyStore)


def test_users_are_created_once(user_store):
    assert user_store.count_users() == 0
    assert user_store.create_user("ann", "artist") == User("ann", "artist")
    with pytest.raises(ValueError, match="already exists"):
        user_store.create_user("ann", "admin")
    assert user_store.get_user("ann") == User("ann", "artist")  # the first create won
    user_store.create_user("bob", "admin")
    assert user_store.count_users() == 2
    assert user_store.get_user("nobody") is None


@pytest.mark.parametrize("name", ["../etc", "", "a" * 65, "-dash", "sp ace", "ü"])
def test_user_names_are_checked(user_store, name):
    with pytest.raises(ValueError, match="user name"):
        user_store.create_user(name, "artist")
    assert user_store.count_users() == 0


def test_keys_authenticate_their_user_only(user_store):
    user_store.create_user("ann", "artist")
    user_store.create_user("bob", "admin")
    ann_info, ann_key = user_store.create_key("ann", "laptop")
    _, bob_key = user_store.create_key("bob")
    assert ann_info.user == "ann" and ann_info.label == "laptop" and ann_info.created_at > 0
    assert ann_key.startswith(f"sdc_{ann_info.key_id}_")
    assert user_store.authenticate(ann_key) == User("ann", "artist")
    assert user_store.authenticate(bob_key) == User("bob", "admin")
    tampered = ann_key[:-1] + ("A" if ann_key[-1] != "A" else "B")
    other_id = "sdc_000000000000_" + ann_key.split("_", 2)[2]
    for bad in (tampered, other_id, "garbage", "", ann_key + " ", " " + ann_key):
        assert user_store.authenticate(bad) is None
    with pytest.raises(ValueError, match="does not exist"):
        user_store.create_key("nobody")


def test_each_key_is_new(user_store):
    user_store.create_user("ann", "artist")
    made = [user_store.create_key("ann") for _ in range(5)]
    assert len({info.key_id for info, _ in made}) == 5 and len({key for _, key in made}) == 5
    assert all(user_store.authenticate(key) == User("ann", "artist") for _, key in made)
    # Only the hash is ever kept; the same function hashes for every store.
    assert all(len(hash_key(key)) == 64 for _, key in made)
