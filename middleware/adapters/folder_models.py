"""ModelCatalog over a folder of checkpoints (``--models-dir``).

Each file's sha256 is computed once and cached in SQLite by (path, size, mtime_ns), so a listing
only costs a directory walk and a stat per file. ``*.ckpt`` files are listed under their own
name; whether the engine may load a pickle checkpoint is the container's policy, not ours.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from middleware.adapters.sqlite_db import SqliteDatabase
from middleware.ports import ModelInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
_CHUNK = 4 * 1024 * 1024


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FolderModelCatalog:
    def __init__(self, models_dir: str | Path, db: SqliteDatabase) -> None:
        self.root = Path(models_dir).resolve()
        self._db = db
        # One hash at a time: two first requests for a big file must not both read it.
        self._hash_lock = threading.Lock()
        db.connection().executescript(_SCHEMA)

    def _info(self, path: Path) -> ModelInfo | None:
        try:
            st = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        sha = self._cached_hash(path, st.st_size, st.st_mtime_ns)
        name = path.relative_to(self.root).as_posix()
        return ModelInfo(name=name, type="checkpoint", size=st.st_size, sha256=sha, uri=path.as_uri())

    def _cached_hash(self, path: Path, size: int, mtime_ns: int) -> str:
        conn = self._db.connection()
        key = str(path)
        row = conn.execute(
            "SELECT sha256 FROM model_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            (key, size, mtime_ns),
        ).fetchone()
        if row:
            return row["sha256"]
        with self._hash_lock:
            row = conn.execute(
                "SELECT sha256 FROM model_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
                (key, size, mtime_ns),
            ).fetchone()
            if row:
                return row["sha256"]
            sha = sha256_of_file(path)
            conn.execute(
                "INSERT OR REPLACE INTO model_hashes(path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                (key, size, mtime_ns, sha),
            )
            return sha

    def _walk(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                if name.lower().endswith(CHECKPOINT_SUFFIXES):
                    found.append(Path(dirpath) / name)
        return sorted(found, key=lambda p: p.relative_to(self.root).as_posix().lower())

    def list(self, type: str | None = None) -> list[ModelInfo]:
        if type not in (None, "checkpoint"):
            return []
        return [info for path in self._walk() if (info := self._info(path)) is not None]

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None:
        if type != "checkpoint" or not name or not name.lower().endswith(CHECKPOINT_SUFFIXES):
            return None
        if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
            return None
        path = self.root / name
        if not path.resolve().is_relative_to(self.root):
            return None
        return self._info(path)
