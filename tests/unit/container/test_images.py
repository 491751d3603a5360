"""Init-image decoding (the generation contract's ``decode_image``, as the engine raises its
problems): formats, data URLs, alpha, EXIF, and every way an image can be bad."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from inference_container.contract import LIMITS as CONTRACT_LIMITS
from inference_container.contract import decode_image as contract_decode_image
from inference_container.engine.contract_errors import contract_error
from inference_container.errors import InvalidRequest, PayloadTooLarge, UnsupportedFeature

FIELD = "payload.init_images[0]"
LIMITS = {"max_pixels": 2048 * 2048 * 4, "max_bytes": 8 * 1024 * 1024}


def decode_image(data, *, field: str, max_pixels: int, max_bytes: int):
    """The contract's decoder under the given limits, its problem raised as the engine does."""
    saved = dict(CONTRACT_LIMITS)
    CONTRACT_LIMITS.update(max_init_image_pixels=max_pixels, max_init_image_bytes=max_bytes)
    try:
        problem, image = contract_decode_image(data, field)
    finally:
        CONTRACT_LIMITS.clear()
        CONTRACT_LIMITS.update(saved)
    if problem is not None:
        raise contract_error(problem)
    return image


def b64(image: Image.Image, fmt: str = "PNG", **save) -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return base64.b64encode(buf.getvalue()).decode()


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one scanline of data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    image = decode_image(b64(Image.new("RGB", (24, 16), (200, 10, 10)), fmt), field=FIELD, **LIMITS)
    assert image.mode == "RGB"
    assert image.size == (24, 16)
    r, g, b = image.getpixel((5, 5))
    assert r > 150 and g < 60 and b < 60


def test_data_url_prefix_and_line_breaks_are_accepted() -> None:
    data = b64(Image.new("RGB", (8, 8), (0, 255, 0)))
    wrapped = "\n".join(data[i : i + 60] for i in range(0, len(data), 60))
    image = decode_image("data:image/png;base64," + wrapped, field=FIELD, **LIMITS)
    assert image.getpixel((0, 0)) == (0, 255, 0)


def test_transparent_pixels_are_flattened_onto_white_like_the_webui() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    image = decode_image(b64(rgba), field=FIELD, **LIMITS)
    assert image.mode == "RGB"
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 255)


def test_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (30, 10), (10, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image = decode_image(b64(source, "JPEG", exif=exif), field=FIELD, **LIMITS)
    assert image.size == (10, 30)


def test_palette_and_grey_images_become_rgb() -> None:
    assert decode_image(b64(Image.new("L", (4, 4), 128)), field=FIELD, **LIMITS).getpixel((0, 0)) == (
        128,
        128,
        128,
    )
    assert decode_image(b64(Image.new("P", (4, 4), 3)), field=FIELD, **LIMITS).mode == "RGB"


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not base64!!",
        "aGVsbG8gd29ybGQ=",
        base64.b64encode(b"\x89PNG\r\n\x1a\n garbage").decode(),
        "data:text/plain,hello",
    ],
)
def test_undecodable_data_is_a_400_naming_the_field(data: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_image(data, field=FIELD, **LIMITS)
    assert not isinstance(info.value, PayloadTooLarge)
    assert info.value.status == 400
    assert info.value.field == FIELD


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_image(123, field=FIELD, **LIMITS)  # type: ignore[arg-type]
    assert "string" in info.value.message


def test_truncated_image_is_a_400() -> None:
    full = base64.b64decode(b64(Image.effect_noise((64, 64), 50).convert("RGB")))
    with pytest.raises(InvalidRequest) as info:
        decode_image(base64.b64encode(full[: len(full) // 2]).decode(), field=FIELD, **LIMITS)
    assert info.value.field == FIELD


def test_urls_are_not_fetched() -> None:
    with pytest.raises(UnsupportedFeature) as info:
        decode_image("https://example.com/cat.png", field=FIELD, **LIMITS)
    assert "base64" in info.value.message


def test_oversized_base64_is_refused_before_decoding() -> None:
    data = "A" * (4 * 1024 * 1024)
    with pytest.raises(PayloadTooLarge) as info:
        decode_image(data, field=FIELD, max_pixels=10**9, max_bytes=1024 * 1024)
    assert info.value.status == 413
    assert info.value.field == FIELD
    assert "1048576" in info.value.message


def test_too_many_pixels_is_a_413_before_load() -> None:
    # Mode "1" keeps this 5000x5000 file small; it decodes to 25 M pixels, over the 16.7 M limit.
    data = b64(Image.new("1", (5000, 5000)))
    assert len(data) < 200_000
    with pytest.raises(PayloadTooLarge) as info:
        decode_image(data, field="payload.init_images[2]", **LIMITS)
    assert info.value.field == "payload.init_images[2]"
    assert "5000x5000" in info.value.message


def test_decompression_bomb_header_is_refused_without_decoding() -> None:
    for size in ((20000, 20000), (100000, 100000)):  # over PIL's own bomb limit, and far over
        data = base64.b64encode(png_with_header_size(*size)).decode()
        with pytest.raises(PayloadTooLarge) as info:
            decode_image(data, field=FIELD, **LIMITS)
        assert info.value.field == FIELD


def test_pil_global_limit_is_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(PayloadTooLarge):
        decode_image(base64.b64encode(png_with_header_size(9000, 9000)).decode(), field=FIELD, **LIMITS)
    assert Image.MAX_IMAGE_PIXELS == before
