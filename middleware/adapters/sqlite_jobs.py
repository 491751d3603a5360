"""JobStore on SQLite: the transition table is enforced at write time, twice.

``transition`` only updates ``WHERE id=? AND status=? AND version=?`` (optimistic concurrency),
and a trigger refuses any status change missing from ``job_transitions`` (filled from the domain
table), so no writer can move a finished job.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
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
    idempotency_key TEXT,
    request_hash TEXT,
    payload TEXT NOT NULL,
    models TEXT NOT NULL,
    progress TEXT NOT NULL,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs(owner, created_at DESC, id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_idempotency
    ON jobs(owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status_id ON jobs(status, id);
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
    "idempotency_key, request_hash, payload, models, progress, error, result"
)

_JSON_CHANGES = {"progress", "error", "result"}
_ACTIVE = tuple(s.value for s in JobStatus if s not in TERMINAL_STATUSES)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _now_us() -> int:
    return time.time_ns() // 1000


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
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        payload=json.loads(row["payload"]),
        models=json.loads(row["models"]),
        progress=Progress.from_dict(json.loads(row["progress"])),
        error=JobError.from_dict(json.loads(row["error"])) if row["error"] else None,
        result=json.loads(row["result"]) if row["result"] else None,
    )


class SqliteJobStore:
    def __init__(self, db: SqliteDatabase, clock_us: Callable[[], int] = _now_us) -> None:
        self._db = db
        self._clock = clock_us
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
        conn = self._db.connection()
        cur = conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 17)}) ON CONFLICT DO NOTHING",
            (
                job.id,
                job.owner,
                job.task,
                job.status.value,
                job.version,
                job.created_at,
                job.updated_at,
                job.heartbeat_at or job.created_at,
                job.endpoint,
                job.checkpoint,
                job.idempotency_key,
                job.request_hash,
                _dumps(job.payload),
                _dumps(job.models),
                _dumps(job.progress.to_dict()),
                _dumps(job.error.to_dict()) if job.error else None,
                _dumps(job.result) if job.result is not None else None,
            ),
        )
        if cur.rowcount == 1:
            return job, True
        if job.idempotency_key is not None:
            earlier = self.find_by_idempotency_key(job.owner, job.idempotency_key)
            if earlier is not None:
                return earlier, False
        raise ValueError(f"job id {job.id} already exists")

    def transition(
        self, job_id: str, from_status: JobStatus, expected_version: int, changes: Mapping[str, Any]
    ) -> Job | None:
        from_status = JobStatus(from_status)
        to_status = JobStatus(changes["status"])
        if not can_transition(from_status, to_status):
            raise IllegalTransition(job_id, from_status.value, to_status.value)
        now = self._clock()
        sets = ["status = ?", "version = version + 1", "updated_at = ?"]
        params: list[Any] = [to_status.value, now]
        for name, value in changes.items():
            if name == "status":
                continue
            if name in _JSON_CHANGES:
                sets.append(f"{name} = ?")
                params.append(_dumps(_plain(value)) if value is not None else None)
            elif name == "heartbeat_at":
                sets.append("heartbeat_at = ?")
                params.append(int(value))
            else:
                raise ValueError(f"a transition cannot change {name!r}")
        params += [job_id, from_status.value, expected_version]
        try:
            row = (
                self._db.connection()
                .execute(
                    f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status = ? AND version = ? "
                    f"RETURNING {_COLUMNS}",
                    params,
                )
                .fetchone()
            )
        except sqlite3.IntegrityError as exc:  # the trigger: cannot happen after can_transition
            raise IllegalTransition(job_id, from_status.value, to_status.value) from exc
        return row_to_job(row) if row else None

    def update_progress(self, job_id: str, progress: Progress) -> Job | None:
        now = self._clock()
        row = (
            self._db.connection()
            .execute(
                "UPDATE jobs SET progress = ?, version = version + 1, updated_at = ?, heartbeat_at = ? "
                f"WHERE id = ? AND status IN ({', '.join('?' * len(_ACTIVE))}) RETURNING {_COLUMNS}",
                (_dumps(progress.to_dict()), now, now, job_id, *_ACTIVE),
            )
            .fetchone()
        )
        return row_to_job(row) if row else None

    def touch(self, job_id: str, at_us: int) -> bool:
        cur = self._db.connection().execute(
            f"UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND status IN ({', '.join('?' * len(_ACTIVE))})",
            (at_us, job_id, *_ACTIVE),
        )
        return cur.rowcount == 1


def _plain(value: Any) -> Any:
    """Value objects to their JSON dicts."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value
