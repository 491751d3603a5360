"""A content-addressed model cache on local disk: fetch once, verify, keep the recently used.

Files are named by their sha256, so two names for the same bytes share one file and a file that
is present is known to be good (it was hashed before it was moved into place). Each fetch streams
into a temporary file in the cache folder while hashing, checks size and sha256, fsyncs, then
renames atomically: a crash or a bad download never leaves a file under a sha256 name.

Concurrency, within a process and across processes sharing the folder:
- one lock file per sha256 under ``.locks/``: fetching holds it exclusively (so concurrent gets
  of one model download it once), using it (``use()``) holds it shared (so eviction skips it);
- a per-sha256 thread lock in front of it keeps threads of one process from queueing on flock;
- eviction runs under one folder-wide lock and only removes files whose lock it can take at once.

Least-recently-used order is the files' modification time, set on every hit, so it survives
restarts and is shared by every process using the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..engine.types import ModelRef
from ..errors import ModelUnavailable
from .fetchers import Fetcher

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CACHED_NAME = re.compile(r"^[0-9a-f]{64}(\.[a-z]+)?$")
_TEMP_PREFIX = ".tmp-"
_LOCKS = ".locks"


@dataclass(frozen=True)
class _Entry:
    path: Path
    sha256: str
    size: int
    mtime_ns: int


class ModelCache:
    """Models by reference → verified local files, within a disk budget."""

    def __init__(self, root: Path | str, budget_bytes: int, *, fetchers: Mapping[str, Fetcher]) -> None:
        """``fetchers``: one per URI scheme, e.g. ``{"file": FileFetcher(roots)}``."""
        if budget_bytes < 0:
            raise ValueError("budget_bytes must be >= 0")
        self.root = Path(root)
        self.budget_bytes = int(budget_bytes)
        self._fetchers: dict[str, Fetcher] = dict(fetchers)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _LOCKS).mkdir(exist_ok=True)
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._pins: Counter[str] = Counter()
        self._counters = {"hits": 0, "misses": 0, "fetched_bytes": 0, "evictions": 0}
        self._remove_stale_temp_files()

    # ------------------------------------------------------------------ public

    def path_for(self, ref: ModelRef) -> Path:
        """Where ``ref`` lives in the cache (whether or not it is there yet).

        Named by the sha256 alone: the name a job gives says nothing reliable about the format,
        which loaders tell from the content.
        """
        if not _SHA256.match(ref.sha256):
            raise ModelUnavailable(
                f"model {ref.name!r} has an invalid sha256 (expected 64 lowercase hex digits)"
            )
        return self.root / ref.sha256

    def get(self, ref: ModelRef) -> Path:
        """The local path of ``ref``, fetched and verified first if it is not cached.

        Raises ModelUnavailable naming the model when it cannot be fetched or does not match its
        size or sha256. The file may be evicted later; hold it with ``use()`` while reading it.
        """
        path = self.path_for(ref)
        with self._file_lock(ref.sha256, shared=True):
            if self._present(path, ref):
                self._touch(path)
                self._count("hits")
                return path
        with self._thread_lock(ref.sha256), self._file_lock(ref.sha256, shared=False):
            if self._present(path, ref, repair=True):  # another thread or process fetched it meanwhile
                self._touch(path)
                self._count("hits")
                return path
            self._count("misses")
            self._evict(keep={ref.sha256}, reserve=ref.size)
            self._fetch(ref, path)
        self._evict(keep={ref.sha256})
        return path

    @contextlib.contextmanager
    def use(self, ref: ModelRef) -> Iterator[Path]:
        """``get(ref)`` and keep the file from eviction (in any process) until the block ends."""
        while True:
            path = self.get(ref)
            lock = self._acquire(ref.sha256, shared=True)
            if path.exists():
                break
            self._release(lock)  # evicted between get() and the lock: fetch again
        with self._guard:
            self._pins[ref.sha256] += 1
        try:
            yield path
        finally:
            with self._guard:
                self._pins[ref.sha256] -= 1
                if self._pins[ref.sha256] <= 0:
                    del self._pins[ref.sha256]
            self._release(lock)

    def stats(self) -> dict[str, int | str]:
        """Usage and counters (counters are this process's since start)."""
        entries = self._entries()
        with self._guard:
            counters = dict(self._counters)
        return {
            "root": str(self.root),
            "budget_bytes": self.budget_bytes,
            "used_bytes": sum(e.size for e in entries),
            "models": len(entries),
            **counters,
        }

    # ------------------------------------------------------------------ fetching

    def _fetch(self, ref: ModelRef, path: Path) -> None:
        scheme = urlparse(ref.uri).scheme
        fetcher = self._fetchers.get(scheme)
        if fetcher is None:
            supported = ", ".join(f"{s}://" for s in sorted(self._fetchers)) or "none"
            raise ModelUnavailable(
                f"model {ref.name!r}: this container cannot fetch {scheme}:// URIs (supported: {supported})"
            )
        try:
            size = fetcher.size(ref.uri)
        except ModelUnavailable as error:
            raise ModelUnavailable(f"model {ref.name!r}: {error.message}") from None
        if size != ref.size:
            # Nothing about the file itself is echoed: the job may have named a file it cannot read.
            raise ModelUnavailable(
                f"model {ref.name!r} does not match its reference: the file's size is not the "
                f"{ref.size} bytes the job says"
            )

        log.info("fetching model %s (%d bytes) into the cache", ref.name, ref.size)
        temp = self.root / f"{_TEMP_PREFIX}{ref.sha256}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            written, actual = self._stream(fetcher, ref, temp)
            if written != ref.size:
                raise ModelUnavailable(
                    f"model {ref.name!r}: size mismatch, the bytes read do not match the reference "
                    f"size of {ref.size} bytes (the source changed while it was read?)"
                )
            if actual != ref.sha256:
                raise ModelUnavailable(f"model {ref.name!r} does not match the reference sha256")
            os.replace(temp, path)
            self._fsync_folder()
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._touch(path)
        self._count("fetched_bytes", written)
        log.info("model %s cached as %s", ref.name, path.name)

    def _stream(self, fetcher: Fetcher, ref: ModelRef, temp: Path) -> tuple[int, str]:
        digest = hashlib.sha256()
        written = 0
        try:
            source = fetcher.open(ref.uri)
        except ModelUnavailable as error:
            raise ModelUnavailable(f"model {ref.name!r}: {error.message}") from None
        try:
            with source, open(temp, "xb") as target:
                while True:
                    chunk = source.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    digest.update(chunk)
                    target.write(chunk)
                    written += len(chunk)
                    if written > ref.size:
                        break  # no need to read the rest of a file that is already too large
                target.flush()
                os.fsync(target.fileno())
        except ModelUnavailable:
            raise
        except OSError as error:
            raise ModelUnavailable(
                f"model {ref.name!r}: copying into the model cache failed ({error.strerror or error})"
            ) from None
        return written, digest.hexdigest()

    # ------------------------------------------------------------------ eviction

    def _evict(self, *, keep: set[str], reserve: int = 0) -> None:
        """Remove least-recently-used models until ``used + reserve`` fits the budget."""
        lock = self._acquire_path(self.root / _LOCKS / "evict.lock", shared=False)
        try:
            entries = self._entries()
            total = sum(e.size for e in entries) + reserve
            if total <= self.budget_bytes:
                return
            with self._guard:
                pinned = set(self._pins)
            for entry in sorted(entries, key=lambda e: (e.mtime_ns, e.path.name)):
                if total <= self.budget_bytes:
                    break
                if entry.sha256 in keep or entry.sha256 in pinned:
                    continue
                held = self._try_acquire(entry.sha256)
                if held is None:
                    continue  # in use or being fetched by another thread or process
                try:
                    entry.path.unlink(missing_ok=True)
                finally:
                    self._release(held)
                total -= entry.size
                self._count("evictions")
                log.info("evicted model %s (%d bytes) from the cache", entry.path.name, entry.size)
            if total > self.budget_bytes:
                log.warning(
                    "model cache holds %d bytes (budget %d): the remaining models are in use or "
                    "larger than the budget, so they stay",
                    total - reserve,
                    self.budget_bytes,
                )
        finally:
            self._release(lock)

    def _entries(self) -> list[_Entry]:
        entries = []
        with os.scandir(self.root) as listing:
            for item in listing:
                if not _CACHED_NAME.match(item.name):
                    continue
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append(_Entry(Path(item.path), item.name[:64], stat.st_size, stat.st_mtime_ns))
        return entries

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _present(path: Path, ref: ModelRef, *, repair: bool = False) -> bool:
        """Whether a file of the right size is cached; with ``repair`` (exclusive lock held) a
        wrong-sized one is removed so it can be fetched again."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if size == ref.size:
            return True
        # Only hashed files are ever renamed in, so this is outside damage.
        if repair:
            log.warning(
                "cached model %s has %d bytes, expected %d: fetching it again", path.name, size, ref.size
            )
            path.unlink(missing_ok=True)
        return False

    @staticmethod
    def _touch(path: Path) -> None:
        now = time.time_ns()
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, ns=(now, now))

    def _count(self, name: str, amount: int = 1) -> None:
        with self._guard:
            self._counters[name] += amount

    def _fsync_folder(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _thread_lock(self, sha256: str) -> threading.Lock:
        with self._guard:
            return self._thread_locks.setdefault(sha256, threading.Lock())

    def _lock_path(self, sha256: str) -> Path:
        return self.root / _LOCKS / f"{sha256}.lock"

    @staticmethod
    def _acquire_path(path: Path, *, shared: bool) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _acquire(self, sha256: str, *, shared: bool) -> int:
        return self._acquire_path(self._lock_path(sha256), shared=shared)

    def _try_acquire(self, sha256: str) -> int | None:
        fd = os.open(self._lock_path(sha256), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _release(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _file_lock(self, sha256: str, *, shared: bool) -> Iterator[None]:
        fd = self._acquire(sha256, shared=shared)
        try:
            yield
        finally:
            self._release(fd)

    def _remove_stale_temp_files(self) -> None:
        """Delete partial downloads left by processes that no longer run."""
        for item in self.root.iterdir():
            if not item.name.startswith(_TEMP_PREFIX):
                continue
            parts = item.name[len(_TEMP_PREFIX) :].split("-")
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            # Our own pid: another cache object of this process may be writing it.
            if pid is not None and (pid == os.getpid() or _process_alive(pid)):
                continue
            item.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
