"""An in-memory ModelCatalog holding models of every type (checkpoint, lora, embedding, vae...).

Stands in for the model library (issue 9) behind the same port: ``get(name, type)`` by exact
name, ``list(type)``. Entries are given as ``(name, type)``; hashes and sizes are derived from
the name so tests can predict the references.
"""

from __future__ import annotations

import hashlib

from middleware.ports import ModelInfo


def library_model(name: str, type: str) -> ModelInfo:
    digest = hashlib.sha256(f"{type}:{name}".encode()).hexdigest()
    return ModelInfo(name=name, type=type, size=1000 + len(name), sha256=digest, uri=f"file:///library/models/{digest}")


class MemoryLibraryCatalog:
    def __init__(self, entries: tuple[tuple[str, str], ...]) -> None:
        self._models = [library_model(name, type) for name, type in entries]

    def list(self, type: str | None = None) -> list[ModelInfo]:
        return [m for m in self._models if type in (None, m.type)]

    def get(self, name: str, type: str = "checkpoint") -> ModelInfo | None:
        return next((m for m in self._models if m.name == name and m.type == type), None)
