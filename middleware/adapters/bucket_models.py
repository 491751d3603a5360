"""A small model catalog in the bucket (AWS mode, until the model library replaces it).

Checkpoints live content-addressed at ``models/<sha256>`` (DESIGN §4); their names come from one
index object, ``models/index.json``::

    {"models": [{"name": "sd15.safetensors", "type": "checkpoint", "sha256": "<64 hex>", "size": 123}]}

Each entry's ``uri`` is ``s3://<bucket>/models/<sha256>``, which the container fetches and
verifies against ``sha256`` and ``size``. The index is re-read at most every ``cache_s`` seconds;
entries that do not follow the rules are skipped (with a warning), never half-used.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable

from middleware.ports import BlobStore, ModelInfo

log = logging.getLogger(__name__)

INDEX_KEY = "models/index.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[^/\\\x00-\x1f][^\\\x00-\x1f]{0,254}$")


def model_key(sha256: str) -> str:
    return f"models/{sha256}"


class BucketModelCatalog:
    def __init__(
        self,
        blobs: BlobStore,
        bucket: str,
        *,
        cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._blobs = blobs
        self._bucket = bucket
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: tuple[float, list[ModelInfo]] | None = None

    def list(self, type: str | None = None) -> list[ModelInfo]:
        models = self._models()
        return [m for m in models if type is None or m.type == type]

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None:
        return next((m for m in self._models() if m.name == name and m.type == type), None)

    def _models(self) -> list[ModelInfo]:
        now = self._clock()
        with self._lock:
            if self._loaded is not None and now - self._loaded[0] < self._cache_s:
                return self._loaded[1]
        models = self._read()
        with self._lock:
            self._loaded = (now, models)
        return models

    def _read(self) -> list[ModelInfo]:
        try:
            document = json.loads(self._blobs.get_bytes(INDEX_KEY))
        except KeyError:
            return []  # no model uploaded yet
        except (ValueError, UnicodeDecodeError):
            log.warning("%s is not JSON; no models are listed until it is fixed", INDEX_KEY)
            return []
        entries = document.get("models") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            log.warning("%s has no \"models\" list; no models are listed until it is fixed", INDEX_KEY)
            return []
        models: list[ModelInfo] = []
        seen: set[tuple[str, str]] = set()
        for position, entry in enumerate(entries):
            info = self._entry(entry)
            if info is None:
                log.warning("%s: entry %d is not a valid model (name, sha256, size); skipped", INDEX_KEY, position)
                continue
            if (info.type, info.name) in seen:
                log.warning("%s: model %r is listed twice; the first entry is used", INDEX_KEY, info.name)
                continue
            seen.add((info.type, info.name))
            models.append(info)
        return models

    def _entry(self, entry: object) -> ModelInfo | None:
        if not isinstance(entry, dict):
            return None
        name, sha256, size = entry.get("name"), entry.get("sha256"), entry.get("size")
        kind = entry.get("type", "checkpoint")
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name.split("/"):
            return None
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            return None
        if not isinstance(kind, str) or not kind:
            return None
        return ModelInfo(
            name=name, type=kind, size=size, sha256=sha256, uri=f"s3://{self._bucket}/{model_key(sha256)}"
        )
