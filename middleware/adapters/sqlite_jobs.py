"""JobStore on SQLite: the transition table is enforced at write time, twice.

``update`` only writes ``WHERE id=? AND status=? AND version=?`` (optimistic concurrency), and a
trigger refuses any status change missing from ``job_transitions`` (filled from the domain table),
so no writer can move a finished job. JSON columns are written with ``ensure_ascii``: a lone
surrogate in a prompt is stored escaped instead of failing SQLite's UTF-8 encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from typing import Any

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.domain.errors import IllegalTransition
from middleware.domain.job import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    Job,
    JobError,
    JobStatus,
    Progress,
    can_transition,
    summarize_payload,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    checkpoint_hash TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    request_hash TEXT,
    summary TEXT NOT NULL,
    progress TEXT NOT NULL,
    error TEXT,
    result TEXT,
    cancel_requested_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs(owner, created_at DESC, id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_idempotency
    ON jobs(owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status_id ON jobs(status, id);
CREATE INDEX IF NOT EXISTS jobs_cancel_requested ON jobs(cancel_requested_at) WHERE cancel_requested_at > 0;
CREATE TABLE IF NOT EXISTS job_transitions (
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS jobs_status_guard BEFORE UPDATE OF status ON jobs
WHEN NEW.status <> OLD.status AND NOT EXISTS (
    SELECT 1 FROM job_transitions WHERE from_status = OLD.status AND to_status = NEW.status
)
BEGIN
    SELECT RAISE(ABORT, 'illegal job status transition');
END;
"""

_COLUMNS = (
    "id, owner, task, status, version, created_at, updated_at, heartbeat_at, endpoint, checkpoint, "
    "checkpoint_hash, idempotency_key, request_hash, summary, progress, error, result, cancel_requested_at"
)
# What ``update`` may change (id, owner, task, created_at and the request never change).
_MUTABLE = (
    "status", "version", "updated_at", "heartbeat_at", "progress", "error", "result", "cancel_requested_at"
)  # fmt: skip

_ACTIVE = tuple(s.value for s in JobStatus if s not in TERMINAL_STATUSES)


def _dumps(value: Any) -> str:
    # ensure_ascii: the text is plain ASCII whatever the prompt holds (lone surrogates included).
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _row_values(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "owner": job.owner,
        "task": job.task,
        "status": job.status.value,
        "version": job.version,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "heartbeat_at": job.heartbeat_at or job.created_at,
        "endpoint": job.endpoint,
        "checkpoint": job.checkpoint,
        "checkpoint_hash": job.checkpoint_hash,
        "idempotency_key": job.idempotency_key,
        "request_hash": job.request_hash,
        "summary": _dumps(job.summary),
        "progress": _dumps(job.progress.to_dict()),
        "error": _dumps(job.error.to_dict()) if job.error else None,
        "result": _dumps(job.result_summary) if job.result_summary is not None else None,
        "cancel_requested_at": job.cancel_requested_at,
    }


def encode_cursor(created_at: int, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split(":", 1)
        return int(created), job_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("cursor is not one this server produced; start again without it") from exc


def row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        owner=row["owner"],
        task=row["task"],
        status=JobStatus(row["status"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        heartbeat_at=row["heartbeat_at"],
        endpoint=row["endpoint"],
        checkpoint=row["checkpoint"],
        checkpoint_hash=row["checkpoint_hash"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        summary=json.loads(row["summary"]),
        progress=Progress.from_dict(json.loads(row["progress"])),
        error=JobError.from_dict(json.loads(row["error"])) if row["error"] else None,
        result_summary=json.loads(row["result"]) if row["result"] else None,
        cancel_requested_at=row["cancel_requested_at"],
    )


class SqliteJobStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        _migrate(db.connection())
        db.connection().executescript(_SCHEMA)
        with db.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO job_transitions(from_status, to_status) VALUES (?, ?)",
                [(a.value, b.value) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets],
            )

    # -- reads ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        row = self._db.connection().execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row_to_job(row) if row else None

    def find_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        row = (
            self._db.connection()
            .execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key))
            .fetchone()
        )
        return row_to_job(row) if row else None

    def list_by_owner(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        conn = self._db.connection()
        if cursor:
            created, last_id = decode_cursor(cursor)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND (created_at < ? OR (created_at = ? AND id < ?)) "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (owner, created, created, last_id, limit + 1),
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                (owner, limit + 1),
            ).fetchall()
        jobs = [row_to_job(r) for r in rows[:limit]]
        next_cursor = encode_cursor(jobs[-1].created_at, jobs[-1].id) if len(rows) > limit else None
        return jobs, next_cursor

    def find_stale_running(self, older_than_us: int, limit: int = 100) -> list[Job]:
        rows = (
            self._db.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = ? AND heartbeat_at < ? ORDER BY id LIMIT ?",
                (JobStatus.RUNNING.value, older_than_us, limit),
            )
            .fetchall()
        )
        return [row_to_job(r) for r in rows]

    def find_cancels_unanswered(self, requested_before_us: int, limit: int = 100) -> list[Job]:
        rows = (
            self._db.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE cancel_requested_at > 0 AND cancel_requested_at < ? "
                "AND status = ? ORDER BY id LIMIT ?",
                (requested_before_us, JobStatus.RUNNING.value, limit),
            )
            .fetchall()
        )
        return [row_to_job(r) for r in rows]

    def list_by_status(self, status: JobStatus, limit: int = 100, after_id: str | None = None) -> list[Job]:
        rows = (
            self._db.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
                (JobStatus(status).value, after_id or "", limit),
            )
            .fetchall()
        )
        return [row_to_job(r) for r in rows]

    # -- writes --------------------------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        values = _row_values(job)
        cur = self._db.connection().execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * len(values))}) ON CONFLICT DO NOTHING",
            [values[c.strip()] for c in _COLUMNS.split(",")],
        )
        if cur.rowcount == 1:
            return self.get(job.id) or job, True
        if job.idempotency_key is not None:
            earlier = self.find_by_idempotency_key(job.owner, job.idempotency_key)
            if earlier is not None:
                return earlier, False
        raise ValueError(f"job id {job.id} already exists")

    def update(self, previous: Job, new: Job) -> bool:
        if new.id != previous.id or new.version != previous.version + 1:
            raise ValueError(f"job {new.id}: an update must write version {previous.version + 1}")
        if new.status is not previous.status and not can_transition(previous.status, new.status):
            raise IllegalTransition(new.id, previous.status.value, new.status.value)
        values = _row_values(new)
        sets = ", ".join(f"{name} = ?" for name in _MUTABLE)
        params = [values[name] for name in _MUTABLE] + [new.id, previous.status.value, previous.version]
        try:
            cur = self._db.connection().execute(
                f"UPDATE jobs SET {sets} WHERE id = ? AND status = ? AND version = ?", params
            )
        except sqlite3.IntegrityError as exc:  # the trigger: cannot happen after can_transition
            raise IllegalTransition(new.id, previous.status.value, new.status.value) from exc
        return cur.rowcount == 1

    def touch(self, job_id: str, at_us: int) -> bool:
        cur = self._db.connection().execute(
            f"UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND status IN ({', '.join('?' * len(_ACTIVE))})",
            (at_us, job_id, *_ACTIVE),
        )
        return cur.rowcount == 1


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a jobs table written before records became summaries (payload and models columns)
    up to date; their requests are not in the blob store, so such jobs keep only the summary."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "payload" not in columns:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE jobs ADD COLUMN checkpoint_hash TEXT NOT NULL DEFAULT ''")
        conn.execute("ALTER TABLE jobs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}'")
        conn.execute("ALTER TABLE jobs ADD COLUMN cancel_requested_at INTEGER NOT NULL DEFAULT 0")
        for row in conn.execute("SELECT id, payload FROM jobs").fetchall():
            try:
                summary = summarize_payload(json.loads(row["payload"]))
            except ValueError:
                summary = {}
            conn.execute("UPDATE jobs SET summary = ? WHERE id = ?", (_dumps(summary), row["id"]))
        for row in conn.execute("SELECT id, result FROM jobs WHERE result IS NOT NULL").fetchall():
            try:
                old = json.loads(row["result"])
                keys = [str(img["key"]) for img in old.get("images", [])]
                new = {"count": len(keys), "keys": keys, "interrupted": False}
                new.update({k: old.get(k) for k in ("info", "infotexts") if k in old})
            except (ValueError, TypeError, KeyError, AttributeError):
                new = None
            conn.execute("UPDATE jobs SET result = ? WHERE id = ?", (_dumps(new) if new else None, row["id"]))
        conn.execute("ALTER TABLE jobs DROP COLUMN payload")
        conn.execute("ALTER TABLE jobs DROP COLUMN models")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
