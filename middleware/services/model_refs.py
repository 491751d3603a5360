"""A payload's LoRA tags, embedding words and VAE setting resolved to exact library references.

At submit the job document gets ``models.loras`` / ``models.embeddings`` / ``models.vae`` (DESIGN
§4): name, URI, sha256 and size of each file, so the engine fetches exactly what was asked for
by hash. Names match as A1111 matches them: the file name, or its stem (``<lora:film>`` for
``film.safetensors``). An unknown LoRA or VAE is refused naming the field, with close matches;
an embedding is taken only when it exists (any other word is just a word, as in A1111).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from middleware.domain.errors import FieldError, ModelUnavailable
from middleware.domain.extra_networks import (
    embedding_stem,
    embeddings_used,
    lora_mentions,
    prompt_texts,
    vae_override,
)
from middleware.ports import ModelCatalog, ModelInfo

VAE_FIELD = "payload.override_settings.sd_vae"
_KIND_WORDS = {"lora": "LoRA", "vae": "VAE", "embedding": "embedding"}


def resolve_extra_models(catalog: ModelCatalog, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``{"loras": [ref], "embeddings": [ref], "vae"?: ref}`` for the job document's ``models``;
    raises ModelUnavailable listing every unknown LoRA / VAE with its field."""
    errors: list[FieldError] = []
    loras: list[dict[str, Any]] = []
    for mention in lora_mentions(payload):
        found = find_model(catalog, mention.name, "lora")
        if isinstance(found, ModelInfo):
            if found.ref() not in loras:
                loras.append(found.ref())
        else:
            errors.append(FieldError(f"payload.{mention.field}", found))
    models: dict[str, Any] = {"loras": loras, "embeddings": []}
    vae_name = vae_override(payload)
    if vae_name is not None:
        found = find_model(catalog, vae_name, "vae")
        if isinstance(found, ModelInfo):
            models["vae"] = found.ref()
        else:
            errors.append(FieldError(VAE_FIELD, found))
    if errors:
        raise ModelUnavailable(errors)
    texts = prompt_texts(payload)
    if texts:
        library = {m.name: m for m in catalog.list("embedding")}
        models["embeddings"] = [library[name].ref() for name in embeddings_used(texts, _unique_stems(library))]
    return models


def find_model(catalog: ModelCatalog, name: str, type: str) -> ModelInfo | str:
    """The ``type`` model ``name`` means, or the message saying why there is none."""
    wanted = name.strip()
    exact = catalog.get(wanted, type)
    if exact is not None:
        return exact
    models = catalog.list(type)
    hits = [m for m in models if wanted in (m.name, _base(m.name), embedding_stem(m.name))]
    if len(hits) == 1:
        return hits[0]
    word = _KIND_WORDS.get(type, type)
    if len(hits) > 1:
        names = ", ".join(repr(m.name) for m in hits[:5])
        return f"{word} {wanted!r} is ambiguous: it could be {names}; write the full file name"
    if not models:
        return f"unknown {word} {wanted!r}; there are none in the model library yet: upload it first"
    candidates: dict[str, str] = {}
    for m in models:
        candidates.setdefault(embedding_stem(m.name).lower(), m.name)
        candidates.setdefault(m.name.lower(), m.name)
    close = difflib.get_close_matches(embedding_stem(wanted).lower(), list(candidates), n=3, cutoff=0.5)
    suggestions = list(dict.fromkeys(candidates[c] for c in close))
    if suggestions:
        return f"unknown {word} {wanted!r}; did you mean {', '.join(repr(s) for s in suggestions)}?"
    shown = ", ".join(repr(m.name) for m in models[:10]) + (f" (and {len(models) - 10} more)" if len(models) > 10 else "")
    return f"unknown {word} {wanted!r}; available: {shown}"


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _unique_stems(library: Mapping[str, ModelInfo]) -> list[str]:
    """Embedding names whose stem no other embedding shares (a prompt word could not tell them apart)."""
    stems: dict[str, list[str]] = {}
    for name in library:
        stems.setdefault(embedding_stem(name).lower(), []).append(name)
    return [names[0] for names in stems.values() if len(names) == 1]
