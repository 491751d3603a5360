"""A jobs table written before records became summaries opens, and its jobs still read."""

import json
import sqlite3

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_jobs import SqliteJobStore
from middleware.domain.job import JobStatus

OLD_SCHEMA = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL,
    version INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL, endpoint TEXT NOT NULL, checkpoint TEXT NOT NULL,
    idempotency_key TEXT, request_hash TEXT, payload TEXT NOT NULL, models TEXT NOT NULL,
    progress TEXT NOT NULL, error TEXT, result TEXT
);
"""


def test_an_old_jobs_table_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    result = {"images": [{"index": 0, "key": "jobs/a/images/0.png"}], "parameters": {"init_images": ["x"]},
              "info": "{}", "infotexts": ["a cat"]}  # fmt: skip
    conn.execute(
        "INSERT INTO jobs VALUES ('a','ann','txt2img','succeeded',3,1,2,2,'local','m.safetensors',NULL,NULL,?,?,?,NULL,?)",
        (json.dumps({"prompt": "a cat", "width": 64, "init_images": ["x" * 5000]}), "{}",
         json.dumps({"phase": "done"}), json.dumps(result)),
    )  # fmt: skip
    conn.commit()
    conn.close()
    db = SqliteDatabase(path)
    try:
        job = SqliteJobStore(db).get("a")
        assert job.status is JobStatus.SUCCEEDED and job.summary == {"prompt": "a cat", "width": 64, "input_images": 1}
        assert job.result["images"] == [{"index": 0, "key": "jobs/a/images/0.png"}]
        assert job.result["infotexts"] == ["a cat"]
        SqliteJobStore(db)  # opening again is a no-op
    finally:
        db.close()
