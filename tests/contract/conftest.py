"""Adapters under contract test. A new adapter (DynamoDB, S3 through moto) joins by adding a param."""

from __future__ import annotations

import pytest

from middleware.adapters.fs_blobs import FolderBlobStore
from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.adapters.sqlite_jobs import SqliteJobStore
from tests.fakes.memory_ports import MemoryBlobStore, MemoryJobStore


@pytest.fixture(params=["sqlite", "memory"])
def job_store(request, tmp_path):
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "jobs.sqlite")
        yield SqliteJobStore(db)
        db.close()
    else:
        yield MemoryJobStore()


@pytest.fixture(params=["folder", "memory"])
def blob_store(request, tmp_path):
    if request.param == "folder":
        yield FolderBlobStore(tmp_path / "blobs", b"s" * 32)
    else:
        yield MemoryBlobStore(b"s" * 32)
