"""What a payload asks of the model library: LoRA tags, embedding words and the VAE setting.

Pure parsing, no lookups (``services/model_refs`` resolves the names). The tag grammar is the
generation contract's (``network_tags``), so the middleware reads a tag exactly as the engine
will; embeddings are words, found the way A1111 finds them (its tokenizer splits at anything
that is not a letter or digit, and lowercases).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from middleware.domain.contract import network_tags

# Where LoRA tags are read: A1111 applies them from the prompt only, and the contract refuses a
# tag anywhere else (in the negative prompt A1111 would leave it as plain text, applying nothing).
TAG_FIELDS = ("prompt",)
EMBEDDING_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
# A1111's values of sd_vae that mean "the checkpoint's own VAE" (no override).
NO_VAE_OVERRIDE = frozenset({"", "automatic", "none"})


@dataclass(frozen=True)
class LoraMention:
    name: str  # as the tag writes it
    field: str  # the payload field it came from, for error messages


def lora_mentions(payload: Mapping[str, Any]) -> list[LoraMention]:
    """Every distinct LoRA name the prompts' tags use, in order of appearance."""
    seen: dict[str, LoraMention] = {}
    for field in TAG_FIELDS:
        text = payload.get(field)
        if isinstance(text, str):
            for tag in network_tags(text)[0]:
                seen.setdefault(tag.name, LoraMention(tag.name, field))
    return list(seen.values())


def embedding_stem(name: str) -> str:
    """The name a prompt writes for an embedding file: the file name without folder or extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def prompt_texts(payload: Mapping[str, Any]) -> list[str]:
    return [text for field in EMBEDDING_FIELDS if isinstance(text := payload.get(field), str) and text]


def embeddings_used(texts: Iterable[str], names: Iterable[str]) -> list[str]:
    """The names (embedding stems) that occur as whole words in any of ``texts``, case-insensitively."""
    joined = "\n".join(texts)
    used = []
    for name in names:
        stem = embedding_stem(name)
        if stem and re.search(rf"(?<![^\W_]){re.escape(stem)}(?![^\W_])", joined, flags=re.IGNORECASE):
            used.append(name)
    return used


def vae_override(payload: Mapping[str, Any]) -> str | None:
    """The VAE ``override_settings.sd_vae`` names, or None for the checkpoint's own."""
    overrides = payload.get("override_settings")
    value = overrides.get("sd_vae") if isinstance(overrides, Mapping) else None
    if not isinstance(value, str) or value.strip().lower() in NO_VAE_OVERRIDE:
        return None
    return value.strip()
