"""What a model file is, told by its content: safetensors or a (pickle) PyTorch checkpoint.

A name proves nothing (a renamed pickle must not slip through as ``.safetensors``, and the model
cache stores files under their sha256 alone), so every loader asks ``sniff_format``. Only the
safetensors header is ever parsed here; pickles are read with ``weights_only`` and only when the
operator opted in.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from inference_container.errors import ModelRefused, ModelUnavailable

FileFormat = Literal["safetensors", "pickle"]
# What a loader that goes by file name (diffusers) must see for each format.
SUFFIXES: dict[str, str] = {"safetensors": ".safetensors", "pickle": ".ckpt"}
# A safetensors header beyond this is not a checkpoint we want to parse (real ones are < 1 MB).
_MAX_HEADER_BYTES = 64 * 1024 * 1024


def sniff_format(path: Path) -> FileFormat:
    """Tell safetensors from pickle by content (a renamed file must not slip through by its name)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelUnavailable(f"cannot read model file {path.name}: {exc.strerror or exc}") from exc
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= min(_MAX_HEADER_BYTES, size - 8) and head[8:9] == b"{":
            return "safetensors"
    # torch.save writes a zip archive since 1.6; older files are a bare pickle stream (0x80 + protocol).
    if head[:4] == b"PK\x03\x04" or (
        head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    ):
        return "pickle"
    raise ModelUnavailable(
        f"model file {path.name} is neither safetensors nor a PyTorch checkpoint (corrupt or truncated?)"
    )


def read_safetensors_header(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(tensor name -> {dtype, shape, data_offsets}, metadata) from the header alone."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            size = path.stat().st_size
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise ModelUnavailable(f"model file {path.name} has a corrupt safetensors header")
            header = json.loads(f.read(header_len).decode("utf-8"))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailable(
            f"model file {path.name} has an unreadable safetensors header ({exc})"
        ) from exc
    corrupt = ModelUnavailable(f"model file {path.name} has a corrupt safetensors header")
    if not isinstance(header, dict):
        raise corrupt
    metadata = header.pop("__metadata__", None) or {}
    try:
        end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
        if not all(isinstance(v["shape"], list) for v in header.values()) or not isinstance(metadata, dict):
            raise corrupt
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise corrupt from exc
    if 8 + header_len + end > size:
        raise ModelUnavailable(
            f"model file {path.name} is truncated ({size} bytes, header needs {8 + header_len + end})"
        )
    return header, {str(k): str(v) for k, v in metadata.items()}


def pickle_shapes(path: Path) -> dict[str, dict[str, Any]]:
    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for a bad archive
        raise ModelUnavailable(f"cannot read checkpoint {Path(path).name}: {type(exc).__name__}") from exc
    while isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    return {k: {"shape": list(v.shape)} for k, v in data.items() if hasattr(v, "shape")}



def pickle_refused(path: Path) -> ModelRefused:
    return ModelRefused(
        f"{Path(path).name} is a pickle checkpoint (.ckpt), which can run code when loaded; convert it to "
        ".safetensors, or let the operator opt in with SDCLOUD_ALLOW_PICKLE=1"
    )


@contextlib.contextmanager
def named_for_format(path: Path, fmt: FileFormat) -> Iterator[Path]:
    """``path`` under a name whose suffix matches its content, for loaders that pick by suffix.

    diffusers reads anything not named ``*.safetensors`` with ``torch.load``; a cached file is
    named by its hash alone. A symlink in a private temporary folder gives it the right name
    for as long as the block runs (the caller keeps the file itself pinned meanwhile).
    """
    path = Path(path)
    suffix = SUFFIXES[fmt]
    if path.suffix == suffix:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sdcloud-model-") as folder:
        link = Path(folder) / f"model{suffix}"
        os.symlink(path.resolve(), link)
        yield link
