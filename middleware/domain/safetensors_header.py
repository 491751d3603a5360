"""Validation of a safetensors file's header, a pure function over the file's first bytes.

Layout (huggingface/safetensors): 8 bytes little-endian header length N, N bytes of JSON (an
object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional
``__metadata__`` map of strings), then the tensor data; offsets are relative to the data start.
A file that breaks these rules would fail (or worse, be misread) on the GPU: refuse it at upload.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

MAX_HEADER_BYTES = 100 * 1000 * 1000  # the safetensors library's own bound
DTYPE_BYTES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
    "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1, "F8_E8M0": 1,
}


class HeaderError(ValueError):
    """The header breaks the format; the message says how."""


def header_length(prefix: bytes) -> int:
    """N from the first 8 bytes; raises HeaderError when it cannot be a header length."""
    if len(prefix) < 8:
        raise HeaderError("the file is shorter than the 8-byte safetensors header length")
    (length,) = struct.unpack("<Q", prefix[:8])
    if length < 2:
        raise HeaderError(f"the safetensors header length is {length}; a header is at least '{{}}'")
    if length > MAX_HEADER_BYTES:
        raise HeaderError(f"the safetensors header claims {length} bytes; the limit is {MAX_HEADER_BYTES}")
    return length


def validate_header(head: bytes, file_size: int) -> dict[str, Any]:
    """Check the header in ``head`` (the file's first ``8 + N`` bytes at least) of a file of
    ``file_size`` bytes; returns the parsed header. Raises HeaderError naming the problem."""
    length = header_length(head)
    if 8 + length > file_size:
        raise HeaderError(f"the header claims {length} bytes but the file has only {file_size}")
    if len(head) < 8 + length:
        raise HeaderError("the header was not read whole")
    try:
        header = json.loads(head[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeaderError(f"the safetensors header is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise HeaderError("the safetensors header is not a JSON object")
    data_size = file_size - 8 - length
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info)
            continue
        spans.append(_check_tensor(name, info, data_size))
    spans.sort()
    for (_b1, end1, name1), (begin2, _e2, name2) in zip(spans, spans[1:], strict=False):
        if begin2 < end1:
            raise HeaderError(f"tensors {name1!r} and {name2!r} overlap")
    return header


def _check_metadata(info: Any) -> None:
    if not isinstance(info, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in info.items()):
        raise HeaderError("__metadata__ must map strings to strings")


def _check_tensor(name: str, info: Any, data_size: int) -> tuple[int, int, str]:
    if not isinstance(info, dict):
        raise HeaderError(f"tensor {name!r} is not an object")
    dtype = info.get("dtype")
    if dtype not in DTYPE_BYTES:
        raise HeaderError(f"tensor {name!r} has unknown dtype {dtype!r}")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise HeaderError(f"tensor {name!r}: shape must be a list of non-negative integers")
    offsets = info.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise HeaderError(f"tensor {name!r}: data_offsets must be [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise HeaderError(f"tensor {name!r}: data_offsets [{begin}, {end}] are outside the {data_size} data bytes")
    expected = math.prod(shape) * DTYPE_BYTES[dtype]
    if expected != end - begin:
        raise HeaderError(
            f"tensor {name!r}: shape {shape} of {dtype} is {expected} bytes but its span is {end - begin}"
        )
    return begin, end, name
