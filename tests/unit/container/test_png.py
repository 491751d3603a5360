"""PNG output: the infotext travels in the 'parameters' chunk exactly as the WebUI writes it."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image, PngImagePlugin

from inference_container.engine.png import encode_png, read_parameters

INFOTEXT = (
    "a cat, (red:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
    "CFG scale: 7.0, Seed: 1, Size: 64x64, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        out.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def test_round_trip_and_pixels_unchanged() -> None:
    image = Image.effect_noise((64, 48), 40).convert("RGB")
    png = encode_png(image, INFOTEXT)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert read_parameters(png) == INFOTEXT
    decoded = Image.open(io.BytesIO(png))
    assert decoded.size == (64, 48) and decoded.mode == "RGB"
    assert decoded.tobytes() == image.tobytes()


def test_latin1_text_is_a_plain_text_chunk_like_the_webui() -> None:
    png = encode_png(Image.new("RGB", (8, 8)), INFOTEXT)
    text_chunks = [data for kind, data in chunks(png) if kind == b"tEXt"]
    assert text_chunks == [b"parameters\0" + INFOTEXT.encode("latin-1")]


def test_unicode_text_goes_into_an_itxt_chunk() -> None:
    infotext = "猫, 🐱\nSteps: 20, Sampler: Euler, CFG scale: 7.0"
    png = encode_png(Image.new("RGB", (8, 8)), infotext)
    assert any(kind == b"iTXt" and data.startswith(b"parameters\0") for kind, data in chunks(png))
    assert read_parameters(png) == infotext


def test_same_bytes_as_pil_with_the_webui_call() -> None:
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    assert encode_png(image, INFOTEXT) == buf.getvalue()


def test_no_infotext_no_chunk() -> None:
    png = encode_png(Image.new("RGB", (8, 8)), "")
    assert read_parameters(png) is None
    assert all(kind not in (b"tEXt", b"iTXt") for kind, _ in chunks(png))


def test_text_after_image_data_is_found() -> None:
    png = encode_png(Image.new("RGB", (8, 8)), None)
    body = b"parameters\0late text"
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    iend = png.rindex(b"\0\0\0\0IEND")
    assert read_parameters(png[:iend] + chunk + png[iend:]) == "late text"


def test_not_a_png() -> None:
    with pytest.raises(ValueError):
        read_parameters(b"GIF89a nope")
