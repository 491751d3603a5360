"""Finding a checkpoint by any name AUTOMATIC1111 accepts for it.

A1111 (``modules/sd_models.py``: ``checkpoint_aliases``) knows a checkpoint by its file name
(``sub/name.safetensors``), that name without the extension, its title ``name [shorthash]``, its
short hash (the first 10 hex digits of the file's sha256) and the full sha256. The "old" 8-hex
model hash (sha256 of 64 KiB at offset 1 MiB) is not accepted on its own: we never compute it, so
a bare 8-hex value could only be matched by guessing; inside a title it is ignored and the name
decides.
"""

from __future__ import annotations

import difflib
import re

from middleware.domain.errors import FieldError, ModelUnavailable
from middleware.ports import ModelCatalog, ModelInfo

_TITLE = re.compile(r"^(?P<name>.+?)\s*\[(?P<hash>[0-9a-fA-F]{8,64})\]$")
_HEX = re.compile(r"^[0-9a-fA-F]{10,64}$")
SHORT_HASH = 10
_SUFFIXES = (".safetensors", ".ckpt")


def _stem(name: str) -> str:
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def title(model: ModelInfo) -> str:
    """The title A1111 shows: ``name [shorthash]``."""
    return f"{model.name} [{model.sha256[:SHORT_HASH]}]"


def resolve_checkpoint(catalog: ModelCatalog, wanted: str, field: str = "checkpoint") -> ModelInfo:
    """The checkpoint ``wanted`` names; raises ModelUnavailable naming ``field``, with the close
    matches, when there is none."""
    text = wanted.strip()
    exact = catalog.get(text)
    if exact is not None:
        return exact
    models = catalog.list("checkpoint")
    found = _match(models, text)
    if isinstance(found, ModelInfo):
        return found
    if found:  # a reason (e.g. the title's hash belongs to another file)
        raise ModelUnavailable([FieldError(field, found)])
    raise ModelUnavailable([FieldError(field, _unknown(text, models))])


def _match(models: list[ModelInfo], text: str) -> ModelInfo | str | None:
    title_match = _TITLE.match(text)
    if title_match is not None:
        name, digest = title_match.group("name"), title_match.group("hash").lower()
        named = _by_name(models, name)
        if named is None:
            return None
        if len(digest) >= SHORT_HASH and not named.sha256.startswith(digest):
            return (
                f"checkpoint {named.name!r} here has hash {named.sha256[:SHORT_HASH]}, not {digest}: it is "
                f"another file with the same name; pick {title(named)!r} or upload yours"
            )
        return named  # an 8-hex old hash cannot be checked (see the module docstring)
    named = _by_name(models, text)
    if named is not None:
        return named
    if _HEX.match(text):
        digest = text.lower()
        hits = [m for m in models if m.sha256 == digest or (len(digest) == SHORT_HASH and m.sha256.startswith(digest))]
        if len(hits) == 1:
            return hits[0]
    return None


def _by_name(models: list[ModelInfo], name: str) -> ModelInfo | None:
    for model in models:
        if model.name == name:
            return model
    stems = [m for m in models if _stem(m.name) == name]
    if len(stems) == 1:
        return stems[0]
    # A1111 also accepts the bare file name of a checkpoint in a sub-folder.
    base = [m for m in models if m.name.rsplit("/", 1)[-1] in (name, f"{name}.safetensors", f"{name}.ckpt")]
    return base[0] if len(base) == 1 else None


def _unknown(text: str, models: list[ModelInfo]) -> str:
    if not models:
        return f"unknown checkpoint {text!r}; there are none: put .safetensors files in the models folder"
    names = [m.name for m in models]
    candidates = {n.lower(): n for n in names} | {_stem(n).lower(): n for n in names}
    close = difflib.get_close_matches(_stem(text).lower(), list(candidates), n=3, cutoff=0.5)
    suggestions = list(dict.fromkeys(candidates[c] for c in close))
    if suggestions:
        return f"unknown checkpoint {text!r}; did you mean {', '.join(repr(s) for s in suggestions)}?"
    shown = ", ".join(names[:10]) + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")
    return f"unknown checkpoint {text!r}; available: {shown}"
