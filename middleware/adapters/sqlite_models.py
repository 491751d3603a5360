"""The model library's records on SQLite (local mode): models, uploads, imports.

Tables are created with ``CREATE TABLE IF NOT EXISTS`` like the other SQLite adapters; a model's
(owner, type, name) is unique, and an upload's (owner, idempotency key).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import asdict, fields

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.domain.model_library import ModelImport, ModelRecord, Upload
from middleware.ports import StoreConflict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS library_models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    owner TEXT NOT NULL,
    visibility TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    format TEXT NOT NULL,
    UNIQUE (owner, type, name)
);
CREATE INDEX IF NOT EXISTS library_models_sha256 ON library_models(sha256);
CREATE INDEX IF NOT EXISTS library_models_newest ON library_models(created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS library_uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    document TEXT NOT NULL,
    UNIQUE (owner, idempotency_key)
);
CREATE TABLE IF NOT EXISTS library_imports (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
"""
_MODEL_COLUMNS = [f.name for f in fields(ModelRecord)]


def _model(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(**{name: row[name] for name in _MODEL_COLUMNS})


def encode_cursor(created_at: int, model_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, model_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, model_id = json.loads(raw)
    except (ValueError, TypeError):
        raise ValueError("cursor is not one this server handed out") from None
    if not isinstance(created_at, int) or not isinstance(model_id, str):
        raise ValueError("cursor is not one this server handed out")
    return created_at, model_id


class SqliteModelLibrary:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.connection().executescript(_SCHEMA)

    # -- models ---------------------------------------------------------------------------------

    def create_model(self, record: ModelRecord) -> None:
        values = asdict(record)
        try:
            self._db.connection().execute(
                f"INSERT INTO library_models({', '.join(_MODEL_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _MODEL_COLUMNS)})",
                [values[c] for c in _MODEL_COLUMNS],
            )
        except sqlite3.IntegrityError as exc:
            raise StoreConflict(f"{record.owner} already has a {record.type} named {record.name!r}") from exc

    def get_model(self, model_id: str) -> ModelRecord | None:
        row = self._db.connection().execute("SELECT * FROM library_models WHERE id = ?", (model_id,)).fetchone()
        return _model(row) if row else None

    def find_model(self, owner: str, type: str, name: str) -> ModelRecord | None:
        row = self._db.connection().execute(
            "SELECT * FROM library_models WHERE owner = ? AND type = ? AND name = ?", (owner, type, name)
        ).fetchone()
        return _model(row) if row else None

    def models_with_sha256(self, sha256: str) -> list[ModelRecord]:
        rows = self._db.connection().execute("SELECT * FROM library_models WHERE sha256 = ?", (sha256,))
        return [_model(r) for r in rows]

    def find_visible(self, viewer: str, type: str, name: str) -> list[ModelRecord]:
        rows = self._db.connection().execute(
            "SELECT * FROM library_models WHERE type = ? AND name = ? AND (owner = ? OR visibility = 'public') "
            "ORDER BY created_at DESC, id DESC",
            (type, name, viewer),
        )
        return [_model(r) for r in rows]

    def list_models(
        self,
        viewer: str | None,
        *,
        type: str | None = None,
        visibility: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        where, args = [], []
        if viewer is not None:
            where.append("(owner = ? OR visibility = 'public')")
            args.append(viewer)
        for column, value in (("type", type), ("visibility", visibility), ("owner", owner)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if q:
            where.append("instr(lower(name), ?) > 0")
            args.append(q.lower())
        if cursor is not None:
            created_at, model_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [created_at, created_at, model_id]
        sql = "SELECT * FROM library_models"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = [_model(r) for r in self._db.connection().execute(sql, [*args, limit + 1])]
        if len(rows) > limit:
            last = rows[limit - 1]
            return rows[:limit], encode_cursor(last.created_at, last.id)
        return rows, None

    def set_visibility(self, model_id: str, visibility: str) -> None:
        self._db.connection().execute("UPDATE library_models SET visibility = ? WHERE id = ?", (visibility, model_id))

    def delete_model(self, model_id: str) -> None:
        self._db.connection().execute("DELETE FROM library_models WHERE id = ?", (model_id,))

    # -- uploads --------------------------------------------------------------------------------

    def create_upload(self, upload: Upload) -> tuple[Upload, bool]:
        try:
            self._db.connection().execute(
                "INSERT INTO library_uploads(id, owner, idempotency_key, status, document) VALUES (?, ?, ?, ?, ?)",
                (upload.id, upload.owner, upload.idempotency_key, upload.status, json.dumps(asdict(upload))),
            )
        except sqlite3.IntegrityError:
            row = self._db.connection().execute(
                "SELECT document FROM library_uploads WHERE owner = ? AND idempotency_key = ?",
                (upload.owner, upload.idempotency_key),
            ).fetchone()
            if row is None:
                raise ValueError(f"upload id {upload.id} is already used") from None
            return Upload(**json.loads(row["document"])), False
        return upload, True

    def get_upload(self, upload_id: str) -> Upload | None:
        row = self._db.connection().execute(
            "SELECT document FROM library_uploads WHERE id = ?", (upload_id,)
        ).fetchone()
        return Upload(**json.loads(row["document"])) if row else None

    def update_upload(self, previous: Upload, new: Upload) -> bool:
        cur = self._db.connection().execute(
            "UPDATE library_uploads SET status = ?, document = ? WHERE id = ? AND status = ?",
            (new.status, json.dumps(asdict(new)), previous.id, previous.status),
        )
        return cur.rowcount == 1

    # -- imports --------------------------------------------------------------------------------

    def create_import(self, job: ModelImport) -> None:
        self._db.connection().execute(
            "INSERT INTO library_imports(id, document) VALUES (?, ?)", (job.id, json.dumps(asdict(job)))
        )

    def get_import(self, import_id: str) -> ModelImport | None:
        row = self._db.connection().execute(
            "SELECT document FROM library_imports WHERE id = ?", (import_id,)
        ).fetchone()
        return ModelImport(**json.loads(row["document"])) if row else None

    def update_import(self, job: ModelImport) -> None:
        self._db.connection().execute(
            "UPDATE library_imports SET document = ? WHERE id = ?", (json.dumps(asdict(job)), job.id)
        )

