"""The ``ModelCatalog`` port over the operator's folder (or bucket index) and the model library.

Submit-time resolution asks ``catalog.get(name, "lora")``; checkpoints are looked up in the
operator's catalog first (as before), then in the library. ``for_user`` gives the view of one
user (their own models and public ones); the plain catalog sees public library models only, so
nobody's private model is ever resolved for someone else.
"""

from __future__ import annotations

from collections.abc import Callable

from middleware.domain.model_library import ModelRecord
from middleware.ports import ModelCatalog, ModelInfo, ModelLibraryStore

_PAGE = 200


class LibraryCatalog:
    def __init__(
        self,
        operator: ModelCatalog | None,
        store: ModelLibraryStore,
        uri_for: Callable[[str], str],
        viewer: str | None = None,
    ) -> None:
        self._operator = operator
        self._store = store
        self._uri_for = uri_for  # sha256 -> the URI the engine fetches (file:///..., s3://...)
        self._viewer = viewer

    def for_user(self, user: str) -> LibraryCatalog:
        return LibraryCatalog(self._operator, self._store, self._uri_for, viewer=user)

    def _info(self, record: ModelRecord) -> ModelInfo:
        return ModelInfo(
            name=record.name, type=record.type, size=record.size, sha256=record.sha256, uri=self._uri_for(record.sha256)
        )

    def _records(self, type: str | None) -> list[ModelRecord]:
        found: list[ModelRecord] = []
        cursor = None
        while True:
            if self._viewer is None:
                page, cursor = self._store.list_models(None, type=type, visibility="public", limit=_PAGE, cursor=cursor)
            else:
                page, cursor = self._store.list_models(self._viewer, type=type, limit=_PAGE, cursor=cursor)
            found += page
            if cursor is None:
                return found

    def list(self, type: str | None = None) -> list[ModelInfo]:
        infos = list(self._operator.list(type)) if self._operator is not None else []
        seen = {(m.type, m.name) for m in infos}
        records = self._records(type)
        if self._viewer is not None:
            records.sort(key=lambda r: r.owner != self._viewer)  # stable: own first, then newest
        for record in records:
            # One entry per (type, name): the operator's first, then the caller's own, then public.
            if (record.type, record.name) in seen:
                continue
            seen.add((record.type, record.name))
            infos.append(self._info(record))
        return infos

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None:
        if self._operator is not None:
            found = self._operator.get(name, type)
            if found is not None:
                return found
        if self._viewer is None:
            candidates = [r for r in self._store.find_visible("", type, name) if r.visibility == "public"]
        else:
            candidates = self._store.find_visible(self._viewer, type, name)
            candidates.sort(key=lambda r: r.owner != self._viewer)  # stable: own first, then newest
        return self._info(candidates[0]) if candidates else None
