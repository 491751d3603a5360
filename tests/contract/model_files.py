"""Tiny safetensors files built by hand (the format's own layout), for upload tests."""

from __future__ import annotations

import hashlib
import json
import struct


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]] | None = None, metadata=None) -> bytes:
    """A valid file: ``tensors`` maps name -> (dtype, shape, raw bytes), laid out in order."""
    tensors = tensors if tensors is not None else {"w": ("F32", [4, 4], bytes(range(64)))}
    header: dict = {}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    return raw_file(header, data)


def raw_file(header: object, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
