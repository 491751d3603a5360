"""Users and API keys on SQLite. Keys are stored only as sha256 hashes, found by a key id.

A key reads ``sdc_<key id>_<secret>``: the key id (public, indexed) finds the row, then the
sha256 of the whole key is compared in constant time. The plaintext exists only in the return
value of ``create_key``.
"""

from __future__ import annotations

import hmac
import sqlite3
import time

from middleware.adapters.api_key_format import (
    DUMMY_HASH,
    KEY_PREFIX,
    USER_NAME_RULE,
    USER_RE,
    hash_key,
    key_id_of,
    new_key,
)
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

__all__ = ["KEY_PREFIX", "SqliteUserStore", "hash_key"]

class SqliteUserStore:
    """Implements both UserStore and ApiKeyStore."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.connection().executescript(_SCHEMA)

    def create_user(self, name: str, role: str) -> User:
        if not USER_RE.match(name):
            raise ValueError(USER_NAME_RULE)
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
        key_id, plaintext = new_key()
        created = time.time_ns() // 1000
        self._db.connection().execute(
            "INSERT INTO api_keys(key_id, user, label, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, user, label, hash_key(plaintext), created),
        )
        return ApiKeyInfo(key_id=key_id, user=user, label=label, created_at=created), plaintext

    def authenticate(self, key: str) -> User | None:
        key_id = key_id_of(key)
        row = None
        if key_id is not None:
            row = (
                self._db.connection()
                .execute(
                    "SELECT k.key_hash, u.name, u.role FROM api_keys k JOIN users u ON u.name = k.user "
                    "WHERE k.key_id = ?",
                    (key_id,),
                )
                .fetchone()
            )
        expected = row["key_hash"] if row else DUMMY_HASH
        if hmac.compare_digest(expected, hash_key(key or "")) and row is not None:
            return User(name=row["name"], role=row["role"])
        return None
