"""The API key format every user store shares: ``sdc_<key id>_<secret>``, stored only as sha256.

The key id (public) finds the stored record; the sha256 of the whole key is then compared in
constant time. A store never sees the plaintext again after ``new_key`` returns it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "sdc_"
KEY_RE = re.compile(r"^sdc_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$")
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
USER_NAME_RULE = "user name must be 1-64 letters, digits or ._@- and start with a letter or digit"
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key id, plaintext key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = KEY_RE.match(key or "")
    return match.group(1) if match else None
