"""Decoding of base64 input images (img2img ``init_images``), safely.

An input image is untrusted: it may be corrupt, huge as text, or a small file that decodes to
billions of pixels. The size in the header is checked before any pixel is decoded; nothing here
changes PIL's process-wide limits, which other code relies on.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedFeature

# Formats the WebUI's users send in practice; other PIL decoders only widen the attack surface.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")

_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

# The WebUI flattens transparent init images onto its default background colour.
BACKGROUND = (255, 255, 255)


def _base64_payload(data: str, field: str) -> str:
    if data.startswith(("http://", "https://")):
        raise UnsupportedFeature(
            "image URLs are not fetched; send the image as base64 (optionally as a data: URL)", field=field
        )
    if data.startswith("data:"):
        match = _DATA_URL.match(data)
        if not match:
            raise InvalidRequest(
                "a data: URL must look like data:image/png;base64,<base64 bytes>", field=field
            )
        data = data[match.end() :]
    return _WHITESPACE.sub("", data)


def decode_image(data: str, *, field: str, max_pixels: int, max_bytes: int) -> Image.Image:
    """Decode one base64 image (plain or data: URL) into an RGB PIL image.

    ``max_bytes`` bounds the decoded file size, ``max_pixels`` the width x height it decodes to.
    Raises InvalidRequest (not an image), PayloadTooLarge (over a limit), or UnsupportedFeature
    (a URL instead of image data), each naming ``field``.
    """
    if not isinstance(data, str):
        raise InvalidRequest(
            f"must be a base64-encoded image string (got {type(data).__name__})", field=field
        )
    text = _base64_payload(data, field)
    if not text:
        raise InvalidRequest("is empty; send a base64-encoded PNG, JPEG or WebP image", field=field)

    # 4 base64 characters carry 3 bytes: refuse before allocating the decoded copy.
    if (len(text) // 4) * 3 > max_bytes + 3:
        raise PayloadTooLarge(
            f"image is larger than {max_bytes} bytes (about {len(text) * 3 // 4} bytes of base64 data)",
            field=field,
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("is not valid base64 image data", field=field) from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes ({len(raw)} bytes)", field=field)

    try:
        image = Image.open(io.BytesIO(raw), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError:
        raise PayloadTooLarge(
            f"image decodes to more than {max_pixels} pixels (decompression bomb guard)", field=field
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidRequest(
            f"is not a readable image; accepted formats: {', '.join(ACCEPTED_FORMATS)}", field=field
        ) from None

    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidRequest(f"image has no pixels ({width}x{height})", field=field)
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels",
            field=field,
        )

    try:
        image.load()
        return _to_rgb(image)
    except Image.DecompressionBombError:
        raise PayloadTooLarge(
            f"image decodes to more than {max_pixels} pixels (decompression bomb guard)", field=field
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise InvalidRequest("image data is truncated or corrupt", field=field) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Upright, opaque RGB, as the WebUI prepares an init image (EXIF rotation, flatten alpha)."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGBa"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")
