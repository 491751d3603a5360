"""Sync the WebUI's local model folders to the cloud library: plan (pure), then upload.

A local file is skipped when the cloud already lists the same content (sha256) under the same
type, or when another local file with that content is uploaded in this run. Hashes are cached by
path + size + mtime in a small JSON file, so a second sync reads no file again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..client import SDCloudClient
from ..errors import SDCloudError
from ..records import ModelInfo
from ..settings import _write_private
from .local_folders import LocalModel, ModelFolders, scan
from .uploader import ProgressFn, Uploader, UploadResult, default_state_dir, sha256_of

log = logging.getLogger("sdcloud.models")


# ---- the hash cache ---------------------------------------------------------------------------


class HashCache:
    """sha256 by (path, size, mtime_ns), persisted as JSON (written after each new hash)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, object]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                self._entries = {k: v for k, v in data.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            log.warning("ignoring an unreadable hash cache %s", self.path)

    def get(self, model: LocalModel) -> str | None:
        entry = self._entries.get(str(model.path))
        if entry and entry.get("size") == model.size and entry.get("mtime_ns") == model.mtime_ns:
            sha = entry.get("sha256")
            return sha if isinstance(sha, str) and len(sha) == 64 else None
        return None

    def put(self, model: LocalModel, sha256: str) -> None:
        with self._lock:
            self._entries[str(model.path)] = {"size": model.size, "mtime_ns": model.mtime_ns, "sha256": sha256}
            _write_private(self.path, json.dumps(self._entries, indent=1, sort_keys=True))

    def sha256(self, model: LocalModel, progress: ProgressFn | None = None) -> tuple[str, bool]:
        """(sha256, whether it was read from the cache)."""
        cached = self.get(model)
        if cached:
            return cached, True
        sha = sha256_of(model.path, progress, model.size)
        self.put(model, sha)
        return sha, False


def default_hash_cache() -> HashCache:
    return HashCache(default_state_dir().parent / "model-hashes.json")


# ---- planning (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFile:
    model: LocalModel
    sha256: str
    reason: str = ""  # why it is skipped; empty for an upload


@dataclass(frozen=True)
class SyncPlan:
    uploads: list[PlannedFile] = field(default_factory=list)
    skipped: list[PlannedFile] = field(default_factory=list)

    @property
    def upload_bytes(self) -> int:
        return sum(p.model.size for p in self.uploads)


def plan_sync(hashed: list[tuple[LocalModel, str]], cloud: list[ModelInfo]) -> SyncPlan:
    """What to upload and what to skip (with the reason), in the order given."""
    in_cloud = {(m.type, m.sha256.lower()): m for m in cloud if m.sha256}
    uploads: list[PlannedFile] = []
    skipped: list[PlannedFile] = []
    planned: dict[tuple[str, str], LocalModel] = {}
    for model, sha in hashed:
        key = (model.type, sha.lower())
        if key in in_cloud:
            skipped.append(PlannedFile(model, sha, f"in the cloud as {in_cloud[key].name}"))
        elif key in planned:
            skipped.append(PlannedFile(model, sha, f"same file as {planned[key].name}"))
        else:
            planned[key] = model
            uploads.append(PlannedFile(model, sha))
    return SyncPlan(uploads, skipped)


# ---- running it -------------------------------------------------------------------------------

# (what is happening, bytes done, bytes total) across the whole sync
SyncProgress = Callable[[str, int, int], None]


@dataclass
class SyncReport:
    plan: SyncPlan
    uploaded: list[tuple[PlannedFile, UploadResult]] = field(default_factory=list)
    failed: list[tuple[PlannedFile, str]] = field(default_factory=list)
    hashed_now: int = 0  # files read to hash them (0 on a second run: the cache answered)

    def lines(self) -> list[str]:
        out = [f"uploaded  {p.model.type:<10} {p.model.name} ({r.bytes_sent} bytes sent"
               f"{', already stored' if r.deduplicated else ''})" for p, r in self.uploaded]
        out += [f"skipped   {p.model.type:<10} {p.model.name}: {p.reason}" for p in self.plan.skipped]
        out += [f"FAILED    {p.model.type:<10} {p.model.name}: {why}" for p, why in self.failed]
        return out


def prepare(
    client: SDCloudClient, folders: ModelFolders, cache: HashCache, progress: SyncProgress | None = None
) -> tuple[SyncPlan, int]:
    """Scan, hash (cached) and compare with the cloud's list; returns the plan and files hashed now."""
    local = scan(folders)
    total = sum(m.size for m in local)
    done = 0
    hashed: list[tuple[LocalModel, str]] = []
    read = 0
    for model in local:
        base = done

        def step(_phase: str, n: int, _total: int, base: int = base, name: str = model.name) -> None:
            if progress is not None:
                progress(f"hashing {name}", base + n, total)

        sha, cached = cache.sha256(model, step)
        read += 0 if cached else 1
        done += model.size
        if progress is not None:
            progress(f"hashed {model.name}", done, total)
        hashed.append((model, sha))
    cloud = client.list_models(None)
    return plan_sync(hashed, cloud), read


def run_sync(
    client: SDCloudClient,
    folders: ModelFolders,
    *,
    dry_run: bool = False,
    visibility: str = "private",
    cache: HashCache | None = None,
    uploader: Uploader | None = None,
    progress: SyncProgress | None = None,
) -> SyncReport:
    """Plan, then (unless dry_run) upload each planned file; one failure does not stop the rest."""
    cache = cache or default_hash_cache()
    plan, read = prepare(client, folders, cache, progress)
    report = SyncReport(plan, hashed_now=read)
    if dry_run or not plan.uploads:
        return report
    uploader = uploader or Uploader(client)
    total = plan.upload_bytes
    base = 0
    for item in plan.uploads:
        def step(_phase: str, n: int, _total: int, base: int = base, name: str = item.model.name) -> None:
            if progress is not None:
                progress(f"uploading {name}", base + n, total)

        try:
            result = uploader.upload(item.model.path, item.model.type, visibility=visibility,
                                     sha256=item.sha256, progress=step)
            report.uploaded.append((item, result))
        except (OSError, ValueError, SDCloudError) as exc:
            # one file's problem (refused, changed, hash mismatch): report it, go on with the others
            report.failed.append((item, str(exc)))
        base += item.model.size
    return report
