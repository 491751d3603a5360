"""Users and API keys on SQLite. Keys are stored only as sha256 hashes, found by a key id.

A key reads ``sdc_<key id>_<secret>``: the key id (public, indexed) finds the row, then the
sha256 of the whole key is compared in constant time. The plaintext exists only in the return
value of ``create_key``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.ports import ApiKeyInfo, User

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    label TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user);
"""

KEY_PREFIX = "sdc_"
_KEY_RE = re.compile(r"^sdc_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SqliteUserStore:
    """Implements both UserStore and ApiKeyStore."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.connection().executescript(_SCHEMA)

    def create_user(self, name: str, role: str) -> User:
        if not _USER_RE.match(name):
            raise ValueError(
                "user name must be 1-64 letters, digits or ._@- and start with a letter or digit"
            )
        try:
            self._db.connection().execute(
                "INSERT INTO users(name, role, created_at) VALUES (?, ?, ?)",
                (name, role, time.time_ns() // 1000),
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"user {name!r} already exists") from exc
        return User(name=name, role=role)

    def get_user(self, name: str) -> User | None:
        row = self._db.connection().execute("SELECT name, role FROM users WHERE name = ?", (name,)).fetchone()
        return User(name=row["name"], role=row["role"]) if row else None

    def count_users(self) -> int:
        return int(self._db.connection().execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def create_key(self, user: str, label: str = "") -> tuple[ApiKeyInfo, str]:
        if self.get_user(user) is None:
            raise ValueError(f"user {user!r} does not exist")
        key_id = secrets.token_hex(6)
        plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = time.time_ns() // 1000
        self._db.connection().execute(
            "INSERT INTO api_keys(key_id, user, label, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, user, label, hash_key(plaintext), created),
        )
        return ApiKeyInfo(key_id=key_id, user=user, label=label, created_at=created), plaintext

    def authenticate(self, key: str) -> User | None:
        match = _KEY_RE.match(key or "")
        row = None
        if match:
            row = (
                self._db.connection()
                .execute(
                    "SELECT k.key_hash, u.name, u.role FROM api_keys k JOIN users u ON u.name = k.user "
                    "WHERE k.key_id = ?",
                    (match.group(1),),
                )
                .fetchone()
            )
        expected = row["key_hash"] if row else _DUMMY_HASH
        if hmac.compare_digest(expected, hash_key(key or "")) and row is not None:
            return User(name=row["name"], role=row["role"])
        return None
