"""Textual-inversion embeddings in A1111's file layouts, used by name in prompts for one job.

A1111 knows an embedding by its file stem and finds it in a prompt by its tokens: wherever the
stem's token ids occur, the embedding's vectors take their place (``sd_hijack_clip``:
``find_embedding_at_position`` and ``EmbeddingsWithFixes``). We do the same in
``text_encoding``; the model itself is never changed, so nothing can outlive the job.

Files: safetensors with ``emb_params`` (vectors x width; SD 1.x / 2.x), ``clip_l`` + ``clip_g``
(SDXL), or a single tensor; the legacy ``.pt`` pickle with ``string_to_param`` is read only when
the operator allows pickles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference_container.engine.model_files import pickle_refused, sniff_format
from inference_container.engine.types import ModelRef
from inference_container.errors import ModelRefused

if TYPE_CHECKING:
    import torch

# The vectors each text encoder reads: SD 1.x / 2.x have one ("" key), SDXL two.
SINGLE, SDXL_L, SDXL_G = "", "clip_l", "clip_g"


@dataclass(frozen=True)
class Embedding:
    name: str  # the file stem: what a prompt writes
    ref: ModelRef
    vectors: dict[str, torch.Tensor]  # encoder key -> (count, width)

    @property
    def vector_count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    @property
    def short_hash(self) -> str:
        """A1111's ``TI hashes`` values: the first 12 hex digits of the file's sha256."""
        return self.ref.sha256[:12]


def embedding_name(ref: ModelRef) -> str:
    base = ref.name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def read_embedding(path: Path, ref: ModelRef, *, allow_pickle: bool) -> Embedding:
    import torch  # here, not at import: the infotext builder imports this module without torch

    name = embedding_name(ref)
    if sniff_format(path) == "pickle":
        if not allow_pickle:
            raise pickle_refused(Path(ref.name))
        data: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        data = load_file(str(path))
    vectors = _vectors(data)
    if vectors is None:
        raise ModelRefused(
            f"embedding {ref.name} is not a textual-inversion file this engine reads (expected emb_params, "
            "clip_l + clip_g, string_to_param or a single tensor)",
            field="models.embeddings",
        )
    shaped = {}
    for key, tensor in vectors.items():
        tensor = tensor.detach().float()
        if tensor.ndim == 1:
            tensor = tensor.unsqueeze(0)
        if tensor.ndim != 2 or tensor.shape[0] < 1:
            raise ModelRefused(f"embedding {ref.name}: vectors of shape {tuple(tensor.shape)}", field="models.embeddings")
        shaped[key] = tensor
    return Embedding(name, ref, shaped)


def _vectors(data: Any) -> dict[str, torch.Tensor] | None:
    import torch

    if not isinstance(data, dict):
        return None
    if "string_to_param" in data:
        params = data["string_to_param"]
        if isinstance(params, dict) and len(params) == 1:
            tensor = next(iter(params.values()))
            return {SINGLE: tensor} if isinstance(tensor, torch.Tensor) else None
        return None
    if SDXL_L in data and SDXL_G in data:
        return {SDXL_L: data[SDXL_L], SDXL_G: data[SDXL_G]}
    if "emb_params" in data:
        return {SINGLE: data["emb_params"]}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    return {SINGLE: tensors[0]} if len(tensors) == 1 and len(data) == 1 else None


def check_fits(embeddings: Sequence[Embedding], widths: dict[str, int]) -> None:
    """Refuse an embedding made for another model family (its keys or its width differ)."""
    for embedding in embeddings:
        if set(embedding.vectors) != set(widths):
            family = "SDXL" if SDXL_G in embedding.vectors else "SD 1.x / 2.x"
            raise ModelRefused(
                f"embedding {embedding.ref.name} is for {family} models, not this checkpoint",
                field="models.embeddings",
            )
        for key, tensor in embedding.vectors.items():
            if tensor.shape[1] != widths[key]:
                raise ModelRefused(
                    f"embedding {embedding.ref.name} has {tensor.shape[1]}-wide vectors; this checkpoint's "
                    f"text encoder takes {widths[key]}: it was made for another model family",
                    field="models.embeddings",
                )


def names_in_prompt(text: str, names: Sequence[str]) -> list[str]:
    """The embedding names a prompt uses, in order of first use (for the infotext).

    The text encoder matches by tokens; CLIP's tokenizer lowercases and splits words at anything
    that is not a letter or digit, so a name between such characters is what it finds.
    """
    found: list[tuple[int, str]] = []
    for name in names:
        match = re.search(rf"(?<![^\W_]){re.escape(name)}(?![^\W_])", text, flags=re.IGNORECASE)
        if match:
            found.append((match.start(), name))
    return [name for _, name in sorted(found)]
